"""Build backends behind one small interface: ESP-IDF's idf.py and PlatformIO's pio.

`build_board` renders (a no-op when nothing changed), picks the backend, runs it with progress
callbacks and returns the `Artifacts` the flasher and CI use.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rtflash.artifacts import Artifacts
from rtflash.boards import Board
from rtflash.builder.progress import ccache_available  # noqa: F401  (re-exported: rtflash.builder.*)
from rtflash.errors import ConfigError, ToolNotFound
from rtflash.settings import Settings

OnLine = Callable[[str], None]
KEEP_ON_CLEAN = {"config", "log", "project"}  # project: the rendered ESP-IDF project folder


class Backend(Protocol):
    name: str

    def unavailable(self, board: Board) -> str | None:
        """None when usable for this board, else why not (one line, with the fix)."""

    def build(self, board: Board, project_dir: Path, config_dir: Path, on_line: OnLine,
              deps_dir: Path | None = None, action: str = "build") -> Artifacts | None:
        """Build the firmware for `board`; raise ToolFailed with the first error and the log path.

        `deps_dir` holds local copies of the firmware's pinned dependencies (DIR/<name>, registry
        components in DIR/components/<ns>__<name>), for offline builds; None lets firmware-src's
        CMake use (and if needed fill) the deps cache. `action` "reconfigure" only configures (no
        compiler needed beyond CMake's checks) and returns None."""


def backends() -> dict[str, Backend]:
    from rtflash.builder.idf import IdfBackend
    from rtflash.builder.pio import PioBackend

    return {"idf": IdfBackend(), "pio": PioBackend()}


def choose(name: str, board: Board) -> Backend:
    """`idf`, `pio`, or `auto`: ESP-IDF when usable, else PlatformIO (which installs its toolchains)."""
    available = backends()
    if name != "auto":
        if name not in available:
            raise ConfigError(f"unknown backend '{name}'; use idf, pio or auto")
        why = available[name].unavailable(board)
        if why:
            raise ToolNotFound(why)
        return available[name]
    reasons = []
    for candidate in ("idf", "pio"):
        if board.is_linux and candidate == "pio":
            continue
        why = available[candidate].unavailable(board)
        if why is None:
            return available[candidate]
        reasons.append(why)
    raise ToolNotFound("no build tool usable: " + "; ".join(reasons))


def clean(build_dir: Path) -> None:
    """Remove the build tool's output, keeping rendered config, logs and the credentials image."""
    if not build_dir.is_dir():
        return
    for child in build_dir.iterdir():
        if child.name in KEEP_ON_CLEAN:
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


@dataclass(frozen=True)
class ExternalSource:
    """What a backend needs to build --firmware DIR: the private copy it builds, the sdkconfig defaults
    layers (DIR's own, then rtflash's board layer) and the environment (the SDK's variables, or None to
    keep the caller's values of those names out of the build)."""

    project: Path
    layers: tuple[Path, ...]
    env: dict
    firmware: object = None  # the rtflash.external.ExternalFirmware it was made from


def external_build_dir(project_dir: Path, board: Board, firmware) -> Path:
    return Path(project_dir) / "build" / firmware.build_name(board)


_TOOL_NAMES = {"idf": "ESP-IDF", "pio": "PlatformIO"}


def build_board(board: Board, settings: Settings, project_dir: Path, backend: str = "auto",
                on_line: OnLine | None = None, clean_first: bool = False, deps_dir: Path | None = None,
                action: str = "build", on_start: Callable[[str], None] | None = None, firmware=None,
                bake_secrets: bool = False) -> Artifacts | None:
    """Render, then build `board` with the chosen backend; returns what was produced (None for
    action "reconfigure", which only configures). `on_start` gets one line saying what is built
    from which firmware tree, once the backend is chosen and usable. `firmware` (an
    rtflash.external.ExternalFirmware) builds that project instead of firmware-src, in
    build/<board>-<dir name>/: an explicit --firmware DIR wins over the checkout's firmware-src."""
    from rtflash.render import ensure_rendered

    project_dir = Path(project_dir)
    if firmware is not None:
        return _build_external(board, settings, project_dir, firmware, backend, on_line, clean_first, action,
                               bake_secrets, on_start)
    build_dir = project_dir / "build" / board.name
    if clean_first:
        clean(build_dir)
    rendered = ensure_rendered(board, settings, project_dir)
    forget_stale_sdkconfig(build_dir, rendered.out_dir, board.idf_target)
    chosen = choose(backend or "auto", board)
    extra: dict = {} if action == "build" else {"action": action}
    if deps_dir is not None:
        deps_dir = Path(deps_dir).resolve()
        if not deps_dir.is_dir():
            raise ConfigError(f"--deps-dir {deps_dir} is not a directory; fetch into it with "
                              f"`rtflash deps --fetch --cache {deps_dir}`")
        extra["deps_dir"] = deps_dir
    if on_start is not None:
        from rtflash.resources import firmware_source

        tree, why = firmware_source()
        on_start(f"building {board.name} with {_TOOL_NAMES.get(chosen.name, chosen.name)} from {tree} ({why})")
    return chosen.build(board, project_dir, rendered.out_dir, on_line or (lambda line: None), **extra)


def _build_external(board: Board, settings: Settings, project_dir: Path, firmware, backend: str,
                    on_line: OnLine | None, clean_first: bool, action: str, bake_secrets: bool,
                    on_start: Callable[[str], None] | None = None) -> Artifacts | None:
    """--firmware DIR: refuse unbaked SDK secrets before anything is written, then render the board
    layer, refresh the private copy of DIR and build it out of tree."""
    from rtflash.external import SECRET_VARS, project_defaults, sync_copy
    from rtflash.render import render_external

    secrets = secret_env(firmware, board, project_dir, bake_secrets)  # raises before CMake without --bake-secrets
    chosen = choose(backend or "auto", board)
    build_dir = external_build_dir(project_dir, board, firmware)
    if clean_first:  # also the private copy (what the project's CMake wrote into it): afresh from DIR
        clean(build_dir)
        shutil.rmtree(build_dir / "project", ignore_errors=True)
    if secrets:  # build.ninja, compile_commands.json, objects and the ELF will hold them: owner only
        build_dir.mkdir(parents=True, exist_ok=True)
        build_dir.chmod(0o700)
    config = build_dir / "config"
    copy = build_dir / "project"
    sync_copy(firmware.source, copy)
    for rel, checkout, _commit in getattr(firmware, "fills", ()):  # --deps-dir: DIR's empty submodules, verified
        sync_copy(checkout, copy / rel, manifest=build_dir / f".rtflash-submodule-{rel.replace('/', '__')}.json")
    render_external(board, settings, config, firmware)  # after the copy: its platformio.ini goes into it
    layers = tuple(p for p in (project_defaults(copy), config / "sdkconfig.defaults") if p is not None)
    forget_stale_sdkconfig(build_dir, config, board.idf_target, layers)
    env: dict = {name: None for name in SECRET_VARS} if firmware.is_upstream else {}
    env.update(secrets)
    extra: dict = {} if action == "build" else {"action": action}
    if on_start is not None:
        on_start(f"building {board.name} with {_TOOL_NAMES.get(chosen.name, chosen.name)} from "
                 f"{firmware.source} (--firmware)")
        if chosen.name == "pio":
            from rtflash.external import pio_note

            if note := pio_note(firmware):
                on_start(note)
    return chosen.build(board, project_dir, config, on_line or (lambda line: None),
                        external=ExternalSource(copy, layers, env, firmware), **extra)


def precedence_note() -> str:
    """Why --firmware DIR is built and not the firmware-src a plain build would use (#23: a project inside
    a checkout builds that checkout's): an explicit --firmware wins."""
    from rtflash.resources import firmware_source

    tree, why = firmware_source()
    return f"--firmware, which wins over {tree}: {why}"


def secret_env(firmware, board: Board, project_dir: Path, bake: bool) -> dict[str, str]:
    """What the build gets for the SDK's variables: the stored credentials with --bake-secrets (each
    registered for redaction first), else a refusal before CMake. For any other project the caller's
    variables of those names are not passed through either (a project may bake them too). It lives here,
    not in rtflash.external, which render imports: external -> credentials -> nvs -> render was a cycle."""
    if not firmware.is_upstream:
        return {}
    if not bake:
        from rtflash.external import refuse_without_bake

        refuse_without_bake(firmware)
    from rtflash import credentials

    names = ("openai_api_key",) if board.is_linux else ("wifi_ssid", "wifi_password", "openai_api_key")
    found = credentials.resolve({}, project_dir, names=names)  # registers each value for redaction
    return {name.upper(): found[name].value for name in names}


GENERATED_SDKCONFIGS = ("sdkconfig", "sdkconfig.pio")  # ESP-IDF's and the PlatformIO builder's


def forget_stale_sdkconfig(build_dir: Path, config_dir: Path, target: str | None = None,
                           layers: tuple[Path, ...] | None = None) -> bool:
    """Delete the generated sdkconfig when its defaults layers changed since it was made.

    ESP-IDF reads sdkconfig.defaults only for symbols an existing sdkconfig lacks, so a changed board
    file (new pins, PSRAM) or a new firmware-src/sdkconfig.defaults would otherwise never reach a build
    dir that already has an sdkconfig. rtflash derives the whole sdkconfig from those layers, so it
    regenerates it instead (menuconfig changes to it are lost then: put them in a board file). One made
    for another target is left for the backend to report (the build dir needs --clean then)."""
    from rtflash.resources import firmware_dir

    if layers is None:
        layers = (firmware_dir() / "sdkconfig.defaults", config_dir / "sdkconfig.defaults")
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in layers if p.is_file())).hexdigest()
    stamp = config_dir / ".sdkconfig-defaults.sha256"
    try:
        previous = stamp.read_text().strip()
    except OSError:
        previous = None
    if previous == digest:
        return False
    removed = False
    from rtflash.builder.idf import configured_target

    for name in GENERATED_SDKCONFIGS:
        path = build_dir / name
        if path.is_file() and configured_target(path) in (None, target):
            path.unlink()
            removed = True
    from rtflash.files import write_atomic

    write_atomic(stamp, digest + "\n")
    return removed
