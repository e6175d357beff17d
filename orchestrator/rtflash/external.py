"""Building a user's own ESP-IDF project (`--firmware DIR`), e.g. a clone of openai-realtime-embedded-sdk.

Why a private copy: ESP-IDF writes only into the build dir, but a project's own CMake may not (the
upstream SDK's components/peer rewrites deps/libpeer/src/config.h inside its checkout at configure
time). So DIR is mirrored into build/<board>-<dir name>/project and built from there; DIR itself is
only ever read. The mirror is refreshed by a manifest of DIR's (size, mtime) per file: a file changed
in DIR is copied again, one removed from DIR is removed from the copy, and files the build wrote
into the copy (that rewritten config.h, a generated platformio.ini) are left alone until DIR's own
version changes.

The upstream SDK is recognised by its files (a CMakeLists.txt that demands OPENAI_API_KEY and names
OPENAI_REALTIMEAPI, src/media.cpp, src/webrtc.cpp, components/peer): its CMake compiles WIFI_SSID,
WIFI_PASSWORD and OPENAI_API_KEY from the environment into the binary, so rtflash supplies them
(from the credential store) only with --bake-secrets, and never passes the caller's own variables
of those names through otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rtflash.boards import Board
from rtflash.errors import ConfigError

UPSTREAM = "upstream-sdk"
PROJECT = "idf-project"
SECRET_VARS = ("WIFI_SSID", "WIFI_PASSWORD", "OPENAI_API_KEY")  # the SDK's CMakeLists.txt reads these
UPSTREAM_FILES = ("src/media.cpp", "src/webrtc.cpp", "components/peer/CMakeLists.txt")
SKIP_TOP = {"build", "managed_components"}  # DIR's own in-tree build output is not source
SKIP_ANY = {".git"}  # a repository (or a submodule's gitlink file) is not needed to build
MANIFEST = ".rtflash-source.json"  # beside the copy: what was mirrored, by DIR's (size, mtime)
# src/media.cpp of the SDK: `#define NAME_PIN N`, the one pin set it drives whatever the board.
_PIN = re.compile(r"^\s*#define\s+([A-Z_]+_PIN)\s+(\d+)", re.M)
_PROJECT_CMAKE = re.compile(r"include\s*\(\s*[^)]*tools/cmake/project\.cmake", re.I)


@dataclass(frozen=True)
class ExternalFirmware:
    """DIR, what it is, and where rtflash builds it for a board."""

    source: Path
    kind: str  # UPSTREAM or PROJECT
    submodules: tuple[str, ...] = field(default=())
    # empty submodules of DIR filled from --deps-dir: (path in DIR, verified git checkout, commit)
    fills: tuple[tuple[str, Path, str], ...] = field(default=())

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def is_upstream(self) -> bool:
        return self.kind == UPSTREAM

    def build_name(self, board: Board) -> str:
        return f"{board.name}-{self.name}"

    def describe(self) -> str:
        if self.is_upstream:
            return (f"{self.source}: the OpenAI Realtime Embedded SDK (openai-realtime-embedded-sdk, esp32 "
                    "branch), built out of tree from a private copy; the checkout is never written")
        return f"{self.source}: an ESP-IDF project, built out of tree from a private copy; it is never written"


def inspect(path: Path | str, deps_dir: Path | None = None, sources: bool = True) -> ExternalFirmware:
    """Check DIR is an ESP-IDF project rtflash can build; each problem is one line with the fix. Empty
    submodules (a clone without --recursive) are taken from `deps_dir` when given, each verified;
    `sources` False (flash, exec: they use the build, not DIR's sources) skips that check."""
    given = Path(path).expanduser()
    source = given.resolve()
    if not source.exists():
        raise ConfigError(f"--firmware {given}: no such directory; give the folder of an ESP-IDF project "
                          "(its top-level CMakeLists.txt includes project.cmake)")
    if not source.is_dir():
        raise ConfigError(f"--firmware {given}: is a file, not a directory; give the project's folder "
                          f"(e.g. {given.parent if str(given.parent) != '.' else '.'}), not one of its files")
    try:
        entries = sorted(p.name for p in source.iterdir())
    except OSError as exc:
        raise ConfigError(f"--firmware {given}: cannot list it ({exc.strerror}); make it readable "
                          f"(chmod -R u+rX {given})") from None
    cmake = source / "CMakeLists.txt"
    if not cmake.is_file():
        if entries and all(_readme_only(name) for name in entries):
            raise ConfigError(f"--firmware {given}: a README-only checkout (openai/openai-realtime-embedded `main` is "
                              "README and LICENSE since 3abe5fb; the SDK is on its esp32 branch): run "
                              f"`git -C {given} checkout esp32 && git -C {given} submodule update --init --recursive`")
        raise ConfigError(f"--firmware {given}: not an ESP-IDF project (no CMakeLists.txt at its top); give the "
                          "folder whose CMakeLists.txt includes $ENV{IDF_PATH}/tools/cmake/project.cmake")
    try:
        text = cmake.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{cmake}: cannot read it ({exc.strerror}); make it readable") from None
    if not _PROJECT_CMAKE.search(text):
        raise ConfigError(f"--firmware {given}: {cmake.name} does not include ESP-IDF's tools/cmake/project.cmake, so "
                          "it is not an ESP-IDF project; give the project's top folder")
    empty = empty_submodules(source) if sources else []
    fills: tuple[tuple[str, Path, str], ...] = ()
    if empty and deps_dir is not None:
        fills = tuple(fill_submodule(source, given, rel, Path(deps_dir)) for rel in empty)
    elif empty:
        raise ConfigError(f"--firmware {given}: submodule(s) {', '.join(empty)} empty (a clone without --recursive): "
                          f"run `git -C {given} submodule update --init --recursive` (offline: --deps-dir D with git "
                          "checkouts D/<name> at the commits DIR pins)")
    upstream = "OPENAI_API_KEY" in text and "OPENAI_REALTIMEAPI" in text and all(
        (source / f).is_file() for f in UPSTREAM_FILES)
    return ExternalFirmware(source, UPSTREAM if upstream else PROJECT, tuple(submodule_paths(source)), fills)


def pinned_commit(source: Path, rel: str) -> str | None:
    """The commit DIR's git HEAD pins for the submodule at `rel` (its gitlink), or None (not a git checkout)."""
    from rtflash.deps import _git

    if not (source / ".git").exists():
        return None
    listed = _git("ls-tree", "HEAD", "--", rel, cwd=source, timeout=30)
    fields = listed.output.split()
    return fields[2] if listed.returncode == 0 and len(fields) >= 3 and fields[0] == "160000" else None


def fill_submodule(source: Path, given: Path, rel: str, deps_dir: Path) -> tuple[str, Path, str]:
    """--deps-dir D for an empty submodule `rel` of DIR: D/<its folder name>, a git checkout verified by
    commit against DIR's gitlink, as `rtflash deps` verifies its pins (rtflash.deps.head_of). A plain tree
    has no fingerprint recorded anywhere for a user's project, so it cannot be verified: one line."""
    from rtflash.deps import head_of

    name = Path(rel).name
    candidate = Path(deps_dir).resolve() / name
    pinned = pinned_commit(source, rel)
    if pinned is None:
        raise ConfigError(f"--firmware {given}: submodule {rel} is empty and DIR is no git checkout recording its "
                          f"commit, so {candidate} cannot be verified; run `git -C {given} submodule update --init "
                          "--recursive` in a clone")
    if not candidate.is_dir():
        raise ConfigError(f"--firmware {given}: submodule {rel} is empty and --deps-dir has no {candidate}; put a git "
                          f"checkout of it at commit {pinned[:12]} there, or run `git -C {given} submodule update "
                          "--init --recursive`")
    head = head_of(candidate)
    if head is None:
        raise ConfigError(f"--deps-dir {candidate}: not a git checkout, so it cannot be verified against commit "
                          f"{pinned[:12]} that {given} pins for {rel}; give a git checkout at that commit")
    if head != pinned:
        raise ConfigError(f"--deps-dir {candidate} is at {head[:12]}, but {given} pins {pinned[:12]} for {rel}: "
                          f"run `git -C {candidate} checkout {pinned}`")
    return rel, candidate, pinned


def _readme_only(name: str) -> bool:
    return name.startswith(".") or name.upper().startswith(("README", "LICENSE", "COPYING"))


def submodule_paths(source: Path) -> list[str]:
    """`path = ...` entries of DIR/.gitmodules (top level: nested ones a project may leave empty)."""
    try:
        text = (source / ".gitmodules").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [m.group(1).strip() for m in re.finditer(r"^\s*path\s*=\s*(.+?)\s*$", text, re.M)]


def empty_submodules(source: Path) -> list[str]:
    """Submodule paths that are missing or hold nothing but a gitlink file."""
    empty = []
    for rel in submodule_paths(source):
        folder = source / rel
        try:
            names = [p.name for p in folder.iterdir() if p.name != ".git"] if folder.is_dir() else []
        except OSError:
            names = []
        if not names:
            empty.append(rel)
    return empty


# --- the private copy -------------------------------------------------------------------------------

def _walk(source: Path) -> list[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every file and symlink rtflash mirrors, sorted; a symlink to a folder
    is mirrored as the link, not followed. os.scandir: one stat per entry (a no-op build walks ~3500)."""
    found = []
    stack = [("", str(source))]
    while stack:
        rel, folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name in SKIP_ANY or (not rel and name in SKIP_TOP):
                    continue
                path = f"{rel}/{name}" if rel else name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((path, entry.path))
                else:
                    found.append((path, entry.stat(follow_symlinks=False)))
    return sorted(found)


def sync_copy(source: Path, dest: Path, manifest: Path | None = None) -> int:
    """Mirror `source` into `dest` (see the module doc); returns how many files were (re)copied.

    Only `dest` is written; `source` is read. An unreadable file in DIR is one line naming it. The
    manifest is dest's sibling MANIFEST unless given (a submodule filled into the copy keeps its own)."""
    import stat as st

    from rtflash.files import write_atomic

    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = manifest or dest.parent / MANIFEST
    try:
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        if previous.get("source") != str(source):
            previous = {"files": {}}
    except (OSError, ValueError):
        previous = {"files": {}}
    old: dict = previous.get("files", {})
    now: dict[str, list[int]] = {}
    copied = 0
    for rel, info in _walk(source):
        stamp = [info.st_size, info.st_mtime_ns, 1 if st.S_ISLNK(info.st_mode) else 0]
        now[rel] = stamp
        if old.get(rel) == stamp and os.path.lexists(dest / rel):
            continue
        target = dest / rel
        src = source / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            if stamp[2]:
                os.symlink(os.readlink(src), target)
            else:
                shutil.copy2(src, target)
                target.chmod(target.stat().st_mode | st.S_IWUSR)  # a read-only DIR gives a writable copy
        except OSError as exc:
            raise ConfigError(f"{src}: cannot copy it into {dest} ({exc.strerror}); make DIR readable "
                              f"(chmod -R u+rX {source}) and the build folder writable") from None
        copied += 1
    removed = sorted(set(old) - set(now))
    for rel in removed:
        gone = dest / rel
        if gone.is_symlink() or gone.is_file():
            gone.unlink()
    if copied or removed or not manifest_path.is_file():
        write_atomic(manifest_path, json.dumps({"source": str(source), "files": now}) + "\n")
    return copied


def tree_digest(root: Path) -> str:
    """sha256 over every file's path, mode bits and bytes under `root` (tests: DIR unchanged byte for byte)."""
    import hashlib

    digest = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if Path(dirpath, d).is_symlink()]):
            path = Path(dirpath, name)
            info = path.lstat()
            digest.update(f"{path.relative_to(root)}\0{info.st_mode:o}\0".encode())
            digest.update(os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
    return digest.hexdigest()


# --- the upstream SDK's secrets, pins and TLS --------------------------------------------------------

def refuse_without_bake(firmware: ExternalFirmware) -> None:
    raise ConfigError(f"--firmware {firmware.source}: the OpenAI Realtime SDK's CMake compiles WIFI_SSID, WIFI_PASSWORD "
                      "and OPENAI_API_KEY into the binary, and rtflash will not bake secrets into a firmware image "
                      "silently: pass --bake-secrets to build it with them from `rtflash secrets` anyway, or build "
                      "rtflash's own firmware (no --firmware), which reads them from NVS (`rtflash provision`)")


def upstream_pins(firmware: ExternalFirmware) -> dict[str, int]:
    """The `*_PIN` defines of the SDK's src/media.cpp: the audio pins the binary drives."""
    try:
        text = (firmware.source / "src" / "media.cpp").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return {name: int(value) for name, value in _PIN.findall(text)}


def board_pins(board: Board) -> dict[str, int] | None:
    """The board's I2S pins under the SDK's names, or None for a board without I2S audio."""
    audio = board.audio
    if board.is_linux or audio.mode == "none":
        return None
    return {"MCLK_PIN": audio.speaker.mclk, "DAC_BCLK_PIN": audio.speaker.bclk, "DAC_LRCLK_PIN": audio.speaker.ws,
            "DAC_DATA_PIN": audio.speaker.data, "ADC_BCLK_PIN": audio.mic.bclk, "ADC_LRCLK_PIN": audio.mic.ws,
            "ADC_DATA_PIN": audio.mic.data}


def notices(firmware: ExternalFirmware, board: Board, bake: bool) -> list[str]:
    """One-line notices shown before building: what DIR is, secrets baked, audio pins, TLS."""
    lines = [firmware.describe()]
    if not firmware.is_upstream:
        return lines
    if bake:
        names = "OPENAI_API_KEY" if board.is_linux else "WIFI_SSID, WIFI_PASSWORD and OPENAI_API_KEY"
        lines.append(f"--bake-secrets: the binary built in build/{firmware.build_name(board)} holds {names} in "
                     "plain text; do not share or publish it (rtflash ci and dist refuse such builds)")
    pins = upstream_pins(firmware)
    wanted = board_pins(board)
    if wanted is not None and pins and any(pins.get(k) != v for k, v in wanted.items()):
        drive = ", ".join(f"{k.removesuffix('_PIN')}={v}" for k, v in pins.items())
        lines.append(f"audio pins: the SDK ignores board {board.name}'s pins (src/media.cpp hard-codes the "
                     f"Sonatino's); the binary drives GPIO {drive}")
    lines.append("TLS: this firmware does not verify the API's certificate (the SDK sets CONFIG_ESP_TLS_INSECURE "
                 "and CONFIG_ESP_TLS_SKIP_SERVER_CERT_VERIFY and attaches no CA); rtflash's own firmware "
                 "(no --firmware) verifies it")
    return lines


# --- the board layer over DIR's own defaults --------------------------------------------------------

# Kconfig choices rtflash's board layer decides; a member DIR's defaults select that the board does not
# is written as `# CONFIG_X is not set` in the board layer, so the override is explicit (and checkable).
BOARD_CHOICES = ("ESPTOOLPY_FLASHSIZE_", "SPIRAM_MODE_", "ESP_CONSOLE_", "ESP_DEFAULT_CPU_FREQ_MHZ_")


def project_defaults(copy: Path) -> Path | None:
    path = copy / "sdkconfig.defaults"
    return path if path.is_file() else None


def partition_source(firmware: ExternalFirmware) -> Path:
    """DIR's own partition table file (CONFIG_PARTITION_TABLE_CUSTOM_FILENAME, relative to DIR)."""
    name = _assignments(firmware.source / "sdkconfig.defaults").get("PARTITION_TABLE_CUSTOM_FILENAME",
                                                                     '"partitions.csv"').strip('"')
    return firmware.source / name


def partition_choice(firmware: ExternalFirmware, board: Board) -> tuple[bool, str]:
    """(use rtflash's table, why): DIR's own partition table unless it does not fit the board's flash."""
    from rtflash.partitions import read_csv

    if board.is_linux:
        return False, "linux has no flash"
    defaults = _assignments(firmware.source / "sdkconfig.defaults")
    if defaults.get("PARTITION_TABLE_CUSTOM") != "y":
        return True, (f"{firmware.name} sets no custom partition table; rtflash's {board.flash_size} table is used "
                      "(build/<board>/config/partitions.csv)")
    csv = partition_source(firmware)
    name = csv.name
    try:
        layout = read_csv(csv)
        end = max(p.offset + p.size for p in layout.partitions)
    except (ConfigError, OSError, ValueError) as exc:
        return True, f"{csv} is unreadable ({exc}); rtflash's {board.flash_size} table is used"
    if end > board.flash_bytes:
        return True, (f"{csv} ends at {end:#x}, past board {board.name}'s {board.flash_size} flash; rtflash's table "
                      "for that size is used")
    return False, f"partition table: {firmware.name}'s own {name} (ends at {end:#x}, fits {board.flash_size})"


def _assignments(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.strip()
        if m := re.match(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$", line):
            out[m.group(1)] = m.group(2).strip()
        elif m := re.match(r"^#\s*CONFIG_([A-Za-z0-9_]+) is not set", line):
            out[m.group(1)] = "n"
    return out


def overridden_choices(firmware: ExternalFirmware, board_layer: str) -> list[str]:
    """Choice members DIR's defaults select that the board layer replaces (or, without PSRAM, any
    CONFIG_SPIRAM_* DIR enables): written `# CONFIG_X is not set` after the board's own lines."""
    ours = {m.group(1) for m in re.finditer(r"^CONFIG_([A-Za-z0-9_]+)=y$", board_layer, re.M)}
    unset = {m.group(1) for m in re.finditer(r"^# CONFIG_([A-Za-z0-9_]+) is not set$", board_layer, re.M)}
    out = []
    for symbol, value in _assignments(firmware.source / "sdkconfig.defaults").items():
        if value != "y" or symbol in ours or symbol in unset:
            continue
        chosen = any(symbol.startswith(p) and any(o.startswith(p) for o in ours) for p in BOARD_CHOICES)
        no_psram = "SPIRAM" in unset and symbol.startswith("SPIRAM_")
        if chosen or no_psram:
            out.append(symbol)
    return out


# --- what `rtflash check` reads for DIR ---------------------------------------------------------------

_SET_LIST = r"set\s*\(\s*{name}\s+([^)]*)\)"


def _cmake_list(text: str, name: str) -> list[str]:
    found: list[str] = []
    for m in re.finditer(_SET_LIST.format(name=name), text):
        found += [w.strip('"') for w in m.group(1).split()]
    found += [w.strip('"') for m in re.finditer(rf"list\s*\(\s*APPEND\s+{name}\s+([^)]*)\)", text)
              for w in m.group(1).split()]
    return found


def component_dirs(firmware: ExternalFirmware, target: str, idf_path: Path) -> tuple[list[Path], list[str] | None]:
    """DIR's component dirs (EXTRA_COMPONENT_DIRS of its CMakeLists.txt, main/, components/) and its
    COMPONENTS list (None: all), for ESP-IDF's expansion when DIR's build is not configured yet."""
    try:
        text = (firmware.source / "CMakeLists.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    dirs = []
    for entry in _cmake_list(text, "EXTRA_COMPONENT_DIRS"):
        entry = entry.replace("$ENV{IDF_PATH}", str(idf_path)).replace("${CMAKE_CURRENT_LIST_DIR}", str(firmware.source))
        if "$" in entry:
            continue
        path = Path(entry) if Path(entry).is_absolute() else firmware.source / entry
        if "linux" in entry and target != "linux":  # the SDK appends its linux-only dirs under if(IDF_TARGET ...)
            continue
        if path.is_dir():
            dirs.append(path)
    components = _cmake_list(text, "COMPONENTS") or None
    return dirs, components


PIO_COMPONENT = "__pio_env"  # platform-espressif32 6.13.0 builder/frameworks/espidf.py generate_default_component
PIO_MARK = "# rtflash --backend pio:"
_TOP_PROJECT = re.compile(r"^project\s*\(", re.M)
PIO_SNIPPET = f"""{PIO_MARK} PlatformIO's espidf builder needs its own component {PIO_COMPONENT} (in its ESP-IDF's
# components/) in the build (find_default_component); a COMPONENTS list or MINIMAL_BUILD would leave it out.
# Added by rtflash to its private copy only; active only with rtflash's platformio.ini (-DRTFLASH_PIO_COMPONENT).
if(RTFLASH_PIO_COMPONENT)
  idf_build_get_property(_rtflash_minimal MINIMAL_BUILD)
  if(DEFINED COMPONENTS)
    list(APPEND COMPONENTS ${{RTFLASH_PIO_COMPONENT}})
  elseif(_rtflash_minimal)
    idf_build_set_property(MINIMAL_BUILD OFF)
    set(COMPONENTS main ${{RTFLASH_PIO_COMPONENT}})
  endif()
endif()
"""


def _code(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def pio_incompatible(firmware: ExternalFirmware) -> str | None:
    """Why PlatformIO's espidf builder cannot build DIR even with rtflash's addition (pio_add_component),
    or None. The builder (platform-espressif32 6.13.0, builder/frameworks/espidf.py) adds a component of
    its own, components/__pio_env in its ESP-IDF, and stops after configure ("Failed to find the default
    IDF component") when the build lacks it. rtflash adds it to a COMPONENTS list or MINIMAL_BUILD just
    before the top-level project() call; it cannot when there is no such call after the include of
    project.cmake, or when DIR replaces COMPONENT_DIRS (which drops ESP-IDF's components/ folder)."""
    try:
        text = (firmware.source / "CMakeLists.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    code = _code(text)
    include = _PROJECT_CMAKE.search(code)
    call = _TOP_PROJECT.search(code, include.end() if include else 0)
    if re.search(r"set\s*\(\s*COMPONENT_DIRS\s", code):
        found = ("set(COMPONENT_DIRS ...), which drops ESP-IDF's components/ folder holding the builder's own "
                 "component (__pio_env)")
    elif call is None and (re.search(r"set\s*\(\s*COMPONENTS\s", code) or re.search(r"MINIMAL_BUILD\s+ON", code)):
        found = ("a COMPONENTS list or MINIMAL_BUILD but no top-level project() line after its include of "
                 "project.cmake, where rtflash would add the builder's own component (__pio_env)")
    else:
        return None
    return (f"PlatformIO's espidf builder cannot build {firmware.source}: its CMakeLists.txt has {found}, and the "
            "builder stops after configure; use --backend idf")


def pio_note(firmware: ExternalFirmware) -> str | None:
    """The one line said before a pio build when rtflash adds the builder's component to the copy, else None."""
    try:
        code = _code((firmware.source / "CMakeLists.txt").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    found = [what for what, pattern in (("set(COMPONENTS ...)", r"set\s*\(\s*COMPONENTS\s"),
                                        ("MINIMAL_BUILD ON", r"MINIMAL_BUILD\s+ON"))
             if re.search(pattern, code)]
    if not found or pio_incompatible(firmware):
        return None
    return (f"PlatformIO: {firmware.name}'s {' and '.join(found)} would leave out the espidf builder's own component "
            f"{PIO_COMPONENT}, and the builder stops after configure without it; rtflash adds it, before project(), "
            "to the CMakeLists.txt of its private copy (DIR is unchanged)")


def pio_add_component(copy: Path) -> bool:
    """Insert PIO_SNIPPET before the top-level project() line of the private copy's CMakeLists.txt (never
    DIR's), once; True when the file was changed. The copy is shared with --backend idf, which passes no
    RTFLASH_PIO_COMPONENT, so there the lines do nothing. A new CMakeLists.txt in DIR is copied afresh
    (sync_copy) and gets them again on the next pio build."""
    from rtflash.files import write_atomic

    cmake = copy / "CMakeLists.txt"
    text = cmake.read_text(encoding="utf-8", errors="replace")
    if PIO_MARK in text:
        return False
    code = _code(text)
    include = _PROJECT_CMAKE.search(code)
    call = _TOP_PROJECT.search(code, include.end() if include else 0)
    if call is None:
        return False
    # _code keeps every line's start, so an offset in `code` is the same line's start in `text`
    lines = text.splitlines(True)
    at = code[:call.start()].count("\n")
    write_atomic(cmake, "".join(lines[:at]) + PIO_SNIPPET + "".join(lines[at:]))
    return True
