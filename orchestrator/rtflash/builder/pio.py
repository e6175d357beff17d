"""PlatformIO backend: `pio run -d build/<board>/project -e <board>` with the board's rendered platformio.ini.

The project folder (beside config/) holds the rendered CMakeLists.txt and platformio.ini, so nothing is
written into firmware-src. PlatformIO fetches its platform, ~10 packages and SCons from its registry on
first use, the builder makes its own ESP-IDF Python env from PyPI, and ESP-IDF's component manager
fetches registry components: offline, PlatformIO retries for about a minute and then fails with an
empty `HTTPClientError`. So before running it rtflash asks PlatformIO itself, locally
(`python -m rtflash.builder.pio --probe`), what this project's environment still lacks, and only for a
missing need checks its server: an unreachable one is one clear error in seconds naming every missing
need, with the command that installs exactly what the build needs.

Offline test set-up (documented in the README, never used unless asked for): `RTFLASH_PIO_PACKAGES=DIR`
names a folder of local PlatformIO packages (../shared/pio-offline/make-packages.sh DEST/packages);
rtflash then runs with an overlay ini adding them as `platform_packages`. When the toolchain PlatformIO
will use is the compile-only stand-in (its package.json says so, bin/_standin.py), rtflash compiles only
the firmware's own components and their dependencies (everything outside ESP-IDF) with `-k`, and says
plainly that nothing can be linked.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from rtflash import proc
from rtflash.artifacts import Artifacts, pio_artifacts
from rtflash.boards import Board
from rtflash.builder.progress import run_logged
from rtflash.errors import ConfigError, ToolFailed, ToolNotFound
from rtflash.files import write_if_changed
from rtflash.resources import firmware_dir

# The servers of each first-run need (checked only when that need is missing).
HOSTS = {
    "platformio": ("api.registry.platformio.org", 443),
    "components": ("components.espressif.com", 443),
    "pypi": ("pypi.org", 443),
    "git": ("github.com", 443),
}
PACKAGES_ENV = "RTFLASH_PIO_PACKAGES"
TOOLCHAIN = "toolchain-xtensa-esp-elf"
FIRMWARE_TARGET = "rtflash-firmware"  # defined by pio_standin.py: the firmware's TUs only
STANDIN_SCRIPT = Path(__file__).with_name("pio_standin.py")


def pio_path() -> str:
    found = shutil.which("pio") or shutil.which("pio", path=str(Path(sys.executable).parent))
    if not found:
        raise ToolNotFound("pio not found: pip install platformio, or use --backend idf")
    return found


def core_dir() -> Path:
    """PlatformIO's core dir ($PLATFORMIO_CORE_DIR, else ~/.platformio): platforms, packages, penv."""
    return Path(os.environ.get("PLATFORMIO_CORE_DIR") or Path.home() / ".platformio")


def server(need: str) -> tuple[str, int]:
    """Host and port of a need's server; PyPI is the index pip will use ($PIP_INDEX_URL, a mirror)."""
    index = os.environ.get("PIP_INDEX_URL")
    if need == "pypi" and index:
        from urllib.parse import urlsplit

        url = urlsplit(index)
        if url.hostname:
            return url.hostname, url.port or (80 if url.scheme == "http" else 443)
    return HOSTS[need]


def reachable(need: str, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(server(need), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Needs:
    """What a `pio run` of one environment still has to download (from PlatformIO's own view)."""
    platform: str            # the ini's platform spec, e.g. "espressif32 @ 6.13.0"
    platform_installed: bool
    packages: tuple[str, ...]  # required platform packages not installed (unknown when no platform)
    scons: bool              # PlatformIO Core's tool-scons is installed
    penv: str | None         # the builder's ESP-IDF Python env dir when it is missing, else None
    components: tuple[str, ...]  # registry components neither local (--deps-dir) nor in managed_components/
    git: tuple[str, ...] = ()    # pinned git deps (deps.toml) missing from the deps cache (no --deps-dir)

    def missing(self) -> list[tuple[str, str]]:
        """(server need, what) pairs, in the order PlatformIO would fetch them."""
        out = []
        if not self.platform_installed:
            out.append(("platformio", f"the platform `{self.platform}` and its packages"))
        elif self.packages:
            names = ", ".join(self.packages)
            out.append(("platformio", f"{len(self.packages)} packages of {self.platform} ({names})"))
        if not self.scons:
            out.append(("platformio", "PlatformIO Core's tool-scons"))
        if self.penv:
            out.append(("pypi", f"the builder's ESP-IDF Python env {self.penv} (pip installs its requirements)"))
        if self.components:
            out.append(("components", f"ESP Component Registry components ({', '.join(self.components)})"))
        if self.git:
            out.append(("git", f"the firmware's pinned git dependencies ({', '.join(self.git)}), cloned at configure"))
        return out


def probe(pio_python: str, project: Path, config: Path, env_name: str) -> Needs:
    """Ask PlatformIO (its own Python API, no network) what this environment lacks."""
    result = proc.run([pio_python, "-m", "rtflash.builder.pio", "--probe", str(project), str(config), env_name],
                      timeout=120, check=False)
    line = next((ln for ln in reversed(result.output.splitlines()) if ln.startswith("{")), None)
    if line is None:
        last = result.output.strip().splitlines()[-1:] or ["no output"]
        raise ToolFailed(f"PlatformIO could not read {config}: {last[0]}")
    data = json.loads(line)
    return Needs(data["platform"], data["platform_installed"], tuple(data["packages"]), data["scons"],
                 data["penv"], ())


def _probe_main(project: str, config: str, env_name: str) -> None:
    """`python -m rtflash.builder.pio --probe PROJECT CONFIG ENV`: one JSON line (run in a subprocess,
    so PlatformIO's process-wide config cache and core dir never leak into rtflash)."""
    from platformio import app, fs
    from platformio.package.manager.core import get_core_package_dir
    from platformio.package.version import get_original_version
    from platformio.platform.exception import UnknownPlatform
    from platformio.platform.factory import PlatformFactory
    from platformio.project.config import ProjectConfig

    app.set_session_var("custom_project_conf", config)  # as `pio run -c CONFIG` does
    with fs.cd(project):
        cfg = ProjectConfig.get_instance(config)
        spec = cfg.get(f"env:{env_name}", "platform")
        out = {"platform": spec, "platform_installed": False, "packages": [], "penv": None,
               "scons": bool(get_core_package_dir("tool-scons", auto_install=False))}
        try:
            platform = PlatformFactory.new(spec, autoinstall=False)
        except UnknownPlatform:
            print(json.dumps(out))
            return
        out["platform_installed"] = True
        platform.configure_project_packages(env_name)
        local = {}  # name -> folder, for platform_packages given as file:// (installed without network)
        for name, opts in platform.packages.items():
            if opts.get("optional") or platform.get_package(name):
                continue
            uri = platform.get_package_spec(name).uri or ""
            if uri.startswith(("file://", "symlink://")):
                local[name] = uri.split("://", 1)[1]
            else:
                out["packages"].append(name)
        framework = platform.get_package("framework-espidf")
        version = str(framework.metadata.version) if framework is not None else None
        if version is None and "framework-espidf" in local:
            try:
                with open(os.path.join(local["framework-espidf"], "package.json"), encoding="utf8") as fp:
                    version = json.load(fp).get("version")
            except (OSError, ValueError):
                version = None
        version = (get_original_version(version) or version) if version else "<version>"
        penv = Path(cfg.get("platformio", "core_dir")) / "penv" / f".espidf-{version}"
        if not (penv / "pio-idf-venv.json").is_file():
            out["penv"] = str(penv)
        print(json.dumps(out))


def registry_components_missing(project: Path, deps_dir: Path | None, target: str) -> tuple[str, ...]:
    """Registry components (deps.toml) the component manager would fetch: none with --deps-dir DIR
    holding DIR/components (rt_project.cmake adds them, the manager is off), else those not yet in
    the project's managed_components/."""
    from rtflash.deps import load_manifest

    if deps_dir is not None and (deps_dir / "components").is_dir():
        return ()
    return tuple(dep.name for dep in load_manifest().registry
                 if target in dep.targets and not (project / "managed_components" / dep.folder).is_dir())


def git_deps_missing(deps_dir: Path | None, target: str) -> tuple[str, ...]:
    """Pinned git deps rt_deps.cmake would clone: none with --deps-dir (CMake names a missing one
    itself), else those not yet in the deps cache."""
    from rtflash.deps import cache_dir, load_manifest

    if deps_dir is not None:
        return ()
    return tuple(dep.name for dep in load_manifest().git if target in dep.targets and not (cache_dir() / dep.name).is_dir())


def local_packages() -> Path | None:
    """$RTFLASH_PIO_PACKAGES: a folder of local PlatformIO packages (offline test set-up), else None."""
    value = os.environ.get(PACKAGES_ENV)
    if not value:
        return None
    folder = Path(value).expanduser().absolute()  # as given: PlatformIO matches file:// specs by URI
    if not folder.is_dir():
        raise ConfigError(f"{PACKAGES_ENV}={value} is not a directory; point it at the packages folder made by "
                          "../shared/pio-offline/make-packages.sh DEST (DEST/packages), or unset it")
    return folder


def standin_toolchain(packages: Path | None) -> Path | None:
    """The compile-only stand-in toolchain's package.json when that is what PlatformIO will use: the one in
    $RTFLASH_PIO_PACKAGES, else the one installed in the core dir. Judged by the package itself (its
    bin/_standin.py, its package.json keywords), never guessed."""
    candidates = [packages / TOOLCHAIN] if packages else []
    candidates.append(core_dir() / "packages" / TOOLCHAIN)
    for folder in candidates:
        meta = folder / "package.json"
        if not meta.is_file():
            continue
        try:
            keywords = json.loads(meta.read_text(encoding="utf-8")).get("keywords", [])
        except (OSError, ValueError):
            keywords = []
        if (folder / "bin" / "_standin.py").is_file() or "stand-in" in keywords:
            return meta
        return None
    return None


def overlay_text(board: Board, packages: Path, standin: bool) -> str:
    """An ini read with `-c`: extends the rendered platformio.ini with the local packages (and, for the
    stand-in, the script that defines the firmware-only target). The rendered file stays as a user gets it."""
    lines = []
    for meta in sorted(packages.glob("*/package.json")):
        try:
            name = json.loads(meta.read_text(encoding="utf-8")).get("name") or meta.parent.name
        except (OSError, ValueError):
            continue
        if name != "tool-scons":  # a PlatformIO Core package, not a platform package
            lines.append(f"    {name} @ file://{meta.parent}")
    text = (f"; Written by rtflash for {PACKAGES_ENV}={packages} (offline test set-up): local packages.\n"
            "[platformio]\nextra_configs = platformio.ini\n\n"
            f"[env:{board.name}]\nplatform_packages =\n" + "\n".join(lines) + "\n")
    if standin:
        text += f"extra_scripts = post:{STANDIN_SCRIPT}\n"
    return text


def refuse_spaces(*paths: Path) -> None:
    """The espidf builder refuses a whitespace in the framework or build path; say so before starting."""
    for path in paths:
        if " " in str(path):
            raise ConfigError(f"{path} contains a space, which PlatformIO's ESP-IDF builder refuses: move the "
                              "project (or PLATFORMIO_CORE_DIR) to a path without spaces, or use --backend idf")


class PioBackend:
    name = "pio"

    def unavailable(self, board: Board) -> str | None:
        if board.is_linux:
            return "PlatformIO cannot build the linux target; use --backend idf"
        try:
            pio_path()
        except ToolNotFound as exc:
            return str(exc)
        return None

    def check_needs(self, needs: Needs, project: Path, board: Board) -> None:
        """Offline with something still to download: one error naming every missing need and its fix."""
        missing = needs.missing()
        unreachable = {need for need in {n for n, _ in missing} if not reachable(need)}
        if not unreachable:
            return
        said = "; ".join(f"{what} ({server(need)[0]} unreachable)" if need in unreachable else what
                         for need, what in missing)
        fixes = []
        if any(n == "platformio" for n, _ in missing) or needs.penv:
            fixes.append(f"connect once and run `pio pkg install -d {project} -e {board.name}` then "
                         f"`rtflash build --board {board.name} --backend pio` (PlatformIO installs exactly "
                         "what this board's build needs; the first build also creates the ESP-IDF Python env "
                         "from PyPI)")
        if needs.git:
            fixes.append("for the git dependencies, `rtflash deps --fetch` once (or build with `--deps-dir DIR`)")
        if needs.components:
            fixes.append("for the registry components, connect once or build with `--deps-dir DIR` holding "
                         "DIR/components/<ns>__<name> (`rtflash deps --fetch --from DIR`)")
        raise ToolFailed(f"PlatformIO build of {board.name} needs downloads: {said}: " + "; ".join(fixes)
                         + ", or use --backend idf with an installed ESP-IDF")

    def build(self, board: Board, project_dir: Path, config_dir: Path, on_line, deps_dir: Path | None = None,
              action: str = "build", external=None) -> Artifacts | None:
        from rtflash.render import project_dir_of


        why = self.unavailable(board)
        if why:
            raise ToolNotFound(why)
        if action != "build":
            raise ConfigError(f"the pio backend only builds (action '{action}'); use --backend idf to {action}")
        if external is not None:
            from rtflash.external import pio_add_component, pio_incompatible

            why = pio_incompatible(external.firmware)
            if why:
                raise ConfigError(why)
            pio_add_component(external.project)  # the private copy only (said by pio_note); DIR is never written
        pio = pio_path()
        project = project_dir_of(config_dir)  # --firmware DIR: the private copy, platformio.ini rendered into it
        build_dir = config_dir.parent
        refuse_spaces(build_dir.resolve(), firmware_dir(), core_dir())
        packages = local_packages()
        standin = standin_toolchain(packages)
        config = project / "platformio.ini"
        if packages is not None:
            config = project / "platformio-offline.ini"
            write_if_changed(config, overlay_text(board, packages, standin is not None))
        needs = probe(sys.executable, project, config, board.name)
        if external is None:  # firmware-src's pinned deps; a --firmware project brings its own
            needs = Needs(needs.platform, needs.platform_installed, needs.packages, needs.scons, needs.penv,
                          registry_components_missing(project, deps_dir, board.idf_target),
                          git_deps_missing(deps_dir, board.idf_target))
        self.check_needs(needs, project, board)
        argv = [pio, "run", "-d", str(project), "-c", str(config), "-e", board.name]
        env = {"RTFLASH_DEPS_DIR": str(deps_dir or "")}  # platformio.ini: -DRT_DEPS_DIR=${sysenv...}, every run
        if deps_dir is not None and (deps_dir / "components").is_dir():
            env["IDF_COMPONENT_MANAGER"] = "0"
        if external is not None:
            env.update(external.env)
        if standin is not None:
            argv += ["-t", FIRMWARE_TARGET]
            env["SCONSFLAGS"] = " ".join(filter(None, [os.environ.get("SCONSFLAGS", ""), "-k"]))
            on_line(f"rtflash: {standin.parent} is a compile-only stand-in toolchain: compiling the firmware's "
                    "own components (everything outside ESP-IDF), linking nothing")
        try:
            run_logged(argv, build_dir, "pio", board.name, on_line, env=env)
        except ToolFailed as exc:
            if standin is not None:
                raise ToolFailed(f"{exc} [compile-only stand-in toolchain {standin.parent}: nothing is linked]") from None
            raise
        if standin is not None:
            raise ToolFailed(f"build of {board.name}: every firmware translation unit compiled; the build stops "
                             f"before link because {standin.parent} is a compile-only stand-in toolchain "
                             f"({standin}): no firmware image. Install PlatformIO's real toolchain (unset "
                             f"{PACKAGES_ENV}) for a flashable build")
        return pio_artifacts(board, build_dir / "pio" / board.name, config_dir)


if __name__ == "__main__" and sys.argv[1:2] == ["--probe"] and len(sys.argv) == 5:
    _probe_main(*sys.argv[2:5])
