"""Compile-check our firmware and its pinned deps for the ESP32-S3 under two real Xtensa front ends.

Why: this machine has no Espressif toolchain, so the ESP32-S3 build can be configured (`idf.py
reconfigure` with the compile-only stand-in `xtensa-esp32s3-elf-gcc` on PATH) but not linked. Every
translation unit of firmware-src and of the pinned third-party code (libpeer, esp-opus, srtp,
esp_codec_dev; not ESP-IDF's own) is then re-run from compile_commands.json:

- `gcc`:   the entry's own command (the stand-in: Debian's lx106 GCC with Espressif-only options
           dropped, `int32_t` as `long`, GCC 14's default errors on), compiled to assembly thrown away
           (`-S -o /dev/null`): -fsyntax-only would skip the optimizer and with it the warnings that
           ESP-IDF's -Werror=all makes errors (stringop-truncation, stringop-overflow, ...);
- `clang`: Debian's clang-22 `--target=xtensa -fsyntax-only`, the same flags minus GCC- and
           Espressif-only ones, the stand-in's newlib headers and `int32_t` as `long` as well.

A failing diagnostic is excused only when EXCUSES names its file AND its diagnostic, with the reason.
Used by tests/test_firmware_xtensa.py and bench/xtensa_compile.py.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rtflash import proc

FRONTENDS = ("gcc", "clang")
CLANG = "clang-22"

# int32_t/uint32_t are `long` with Espressif's toolchain (ESP-IDF 5.0 migration guide): emulate it.
INT32_AS_LONG = ["-U__INT32_TYPE__", "-D__INT32_TYPE__=long int", "-U__UINT32_TYPE__",
                 "-D__UINT32_TYPE__=long unsigned int", "-U__INT_LEAST32_TYPE__", "-D__INT_LEAST32_TYPE__=long int",
                 "-U__UINT_LEAST32_TYPE__", "-D__UINT_LEAST32_TYPE__=long unsigned int"]
# Options clang-22 rejects: Espressif-only machine options and GCC-only code generation options.
# None of them changes what is valid C; -fsyntax-only generates no code.
CLANG_DROP = ("-mlongcalls", "-mdisable-hardware-atomics", "-mno-disable-hardware-atomics", "-mdynconfig=",
              "-mfix-esp32-psram-cache", "-mtarget-align", "-mno-target-align", "-fstrict-volatile-bitfields",
              "-fno-tree-switch-conversion", "-fzero-init-padding-bits=", "-fno-malloc-dce",
              "-fzero-call-used-regs=", "-fdiagnostics-color", "-fno-shrink-wrap")
# GCC-only -W names (e.g. -Wno-old-style-declaration) only disable warnings clang does not know.
CLANG_ADD = ["-Wno-unknown-warning-option", "-fno-color-diagnostics"]

# Where each group's sources live, relative to the deps dir (libpeer's are copied into the build dir
# by components/peer and compiled from there).
DEP_COMPONENTS = {"esp-opus": "components/78__esp-opus", "srtp": "components/sepfy__srtp",
                  "esp_codec_dev": "components/espressif__esp_codec_dev"}
GROUPS = ("firmware", "libpeer", *DEP_COMPONENTS)


@dataclass(frozen=True)
class Excuse:
    """One stand-in false positive: the file (path suffix), the front end, the diagnostic, and why."""

    file: str
    frontend: str
    diagnostic: str  # the -W flag (e.g. -Wincompatible-pointer-types) or, when there is none, a message regex
    reason: str

    def covers(self, frontend: str, diag: Diagnostic) -> bool:
        if self.frontend != frontend or not diag.file.endswith(self.file):
            return False
        return diag.flag == self.diagnostic if self.diagnostic.startswith("-W") else bool(
            re.search(self.diagnostic, diag.message))


# The one reviewed list: each entry one file, one front end, one diagnostic, and why it is not a defect
# of the real ESP32-S3 build.
EXCUSES: tuple[Excuse, ...] = (
    Excuse("sepfy__srtp/libsrtp/srtp/ekt.c", "clang", "-Wuninitialized-const-pointer",
           "clang-only warning (new in clang 21, part of -Wall; ESP-IDF's -Werror=all makes it an error): "
           "srtp_stream_init_from_ekt passes an unset srtp_policy_t. Espressif's GCC 14 has no such "
           "diagnostic, so the real build compiles it; the path runs only when a policy has EKT, and "
           "libpeer's dtls_srtp.c memsets both policies (ekt NULL)."),
    Excuse("78__esp-opus/silk/enc_API.c", "gcc", "-Wstringop-overflow=",
           "stand-in GCC 12 false positive: silk_HP_variable_cutoff(psEnc->state_Fxx) is said to access "
           "8632 bytes 'in a region of size 8' (note: argument 1 of type silk_encoder_state_FIX[0]); the "
           "argument is the array of ENCODER_NUM_CHANNELS states (structs_FIX.h:99) and the callee reads "
           "only state_Fxx[0] (HP_variable_cutoff.c:45), one 8632-byte state. clang reports nothing."),
)

# The same two stand-in false positives where the upstream SDK keeps those files (its own submodules
# esp-libopus and srtp): same code, same diagnostic, same reason. Not patched in the user's DIR.
SDK_EXCUSES: tuple[Excuse, ...] = (
    Excuse("components/srtp/libsrtp/srtp/ekt.c", "clang", EXCUSES[0].diagnostic, EXCUSES[0].reason),
    Excuse("components/esp-libopus/silk/enc_API.c", "gcc", EXCUSES[1].diagnostic, EXCUSES[1].reason),
)


@dataclass(frozen=True)
class Unit:
    """One translation unit selected from compile_commands.json."""

    group: str
    file: Path
    directory: Path
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    message: str
    flag: str  # -Wname of a warning made an error, "" for a hard error

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" + (f" [{self.flag}]" if self.flag else "")


@dataclass
class TuResult:
    unit: Unit
    frontend: str
    returncode: int
    seconds: float
    output: str
    errors: list[Diagnostic] = field(default_factory=list)
    excused: list[tuple[Diagnostic, Excuse]] = field(default_factory=list)

    @property
    def unexcused(self) -> list[str]:
        """Every error no excuse covers; a failed run with no parsable error counts as one."""
        covered = {id(d) for d, _ in self.excused}
        left = [str(d) for d in self.errors if id(d) not in covered]
        if self.returncode != 0 and not self.errors:
            tail = self.output.strip().splitlines()[-1:] or ["(no output)"]
            left.append(f"{self.unit.file}: {self.frontend} exited {self.returncode}: {tail[0]}")
        return left


_DIAG = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:\d+:)? (?:fatal )?error: (?P<msg>.*?)"
                   r"(?: \[(?P<flag>-W[^\]]+)\])?$")


def parse_errors(output: str) -> list[Diagnostic]:
    """`file:line:col: error: message [-Werror=flag]` (GCC) / `[-Werror,-Wflag]` (clang) lines."""
    found = []
    for line in output.splitlines():
        m = _DIAG.match(line.strip())
        if not m:
            continue
        flag = m.group("flag") or ""
        flag = flag.split(",")[-1]  # clang: -Werror,-Wfoo
        flag = "-W" + flag[len("-Werror="):] if flag.startswith("-Werror=") else flag
        found.append(Diagnostic(m.group("file"), int(m.group("line")), m.group("msg"), flag))
    return found


def group_of(source: Path, firmware_dir: Path, deps_dir: Path) -> str | None:
    """Which of our groups a source belongs to; None for ESP-IDF's own and generated files."""
    if source.is_relative_to(firmware_dir):
        return "firmware"
    if "libpeer-src" in source.parts:
        return "libpeer"
    for name, rel in DEP_COMPONENTS.items():
        if source.is_relative_to(deps_dir / rel):
            return name
    return None


def _entry_source(entry: dict) -> Path:
    """A compile_commands.json entry's source file, absolute and resolved (its "file" may be relative)."""
    source = Path(entry["file"])
    if not source.is_absolute():
        source = Path(entry["directory"]) / source
    return source.resolve()


def select_units(compile_commands: Path, firmware_dir: Path, deps_dir: Path) -> list[Unit]:
    """The C translation units of firmware-src and the pinned deps, as the build compiles them."""
    firmware_dir, deps_dir = firmware_dir.resolve(), deps_dir.resolve()
    units = []
    for entry in json.loads(compile_commands.read_text()):
        source = _entry_source(entry)
        if source.suffix != ".c" or not source.is_file():
            continue
        group = group_of(source, firmware_dir, deps_dir)
        if group is None:
            continue
        argv = entry.get("arguments") or shlex.split(entry["command"])
        units.append(Unit(group, source, Path(entry["directory"]), tuple(argv)))
    return units


# firmware-src C files the ESP32-S3 build does not compile, and why.
NOT_ON_ESP32S3 = {"components/rt_session/src/rt_signal_posix.c": "POSIX-socket signalling, host tests only",
                  "components/peer/rt_peer_iface.c": "linux target only: libpeer's ICE interface from the env",
                  "main/linux_signals.c": "linux target only: the SIGTERM/SIGHUP thread (POSIX FreeRTOS port)"}


def expected_firmware_sources(firmware_dir: Path) -> set[Path]:
    """Every C file of our components and main but NOT_ON_ESP32S3: the ESP32-S3 build compiles each."""
    skip = {(firmware_dir / rel).resolve() for rel in NOT_ON_ESP32S3}
    return {p.resolve() for sub in ("main", "components") for p in (firmware_dir / sub).rglob("*.c")} - skip


def _strip_output(argv: Iterable[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "-o":
            skip = True
        elif arg not in ("-c", "-S") and not arg.startswith("-fdiagnostics-color"):
            out.append(arg)
    return out


def _expand(argv: Iterable[str], directory: Path) -> list[str]:
    out = []
    for arg in argv:
        if arg.startswith("@"):
            out += _expand(shlex.split((directory / arg[1:]).read_text()), directory)
        else:
            out.append(arg)
    return out


def standin_package(compiler: str) -> Path:
    """The stand-in toolchain package (bin/ is a symlink farm to _standin.py; newlib-include/ beside)."""
    found = shutil.which(compiler) or compiler
    return Path(found).resolve().parent.parent


SYNTAX_ONLY = ("-fsyntax-only",)


def _with_source(argv: list[str], source: Path | None) -> list[str]:
    """The entry's argv, its source file swapped for `source` (a probe compiled with the TU's flags)."""
    if source is None:
        return argv
    return [str(source) if a.endswith(".c") and not a.startswith("-") else a for a in argv]


TO_NOWHERE = ("-S", "-o", os.devnull)


def gcc_argv(unit: Unit, action: tuple[str, ...] = TO_NOWHERE, source: Path | None = None) -> list[str]:
    """The stand-in GCC (the entry's own compiler) on the entry's flags; by default the whole compile
    but the assembler (which rejects LX7 code), output discarded."""
    return [*_with_source(_strip_output(unit.argv), source), *action, "-fdiagnostics-color=never"]


def clang_argv(unit: Unit, action: tuple[str, ...] = SYNTAX_ONLY, source: Path | None = None,
               clang: str = CLANG) -> list[str]:
    """clang-22 --target=xtensa on the entry's flags with the stand-in's newlib and int32_t as long."""
    newlib = standin_package(unit.argv[0]) / "newlib-include"
    flags = [a for a in _expand(_strip_output(unit.argv[1:]), unit.directory) if not a.startswith(CLANG_DROP)]
    return [clang, "--target=xtensa", "-nostdlibinc", "-isystem", str(newlib), *INT32_AS_LONG,
            *_with_source(flags, source), *action, *CLANG_ADD]


ARGV: dict[str, Callable[..., list[str]]] = {"gcc": gcc_argv, "clang": clang_argv}


def check_unit(unit: Unit, frontend: str, excuses: tuple[Excuse, ...] = EXCUSES) -> TuResult:
    argv = ARGV[frontend](unit)
    start = time.perf_counter()
    result = proc.run(argv, cwd=unit.directory, check=False, timeout=300)
    errors = parse_errors(result.output)
    excused: list[tuple[Diagnostic, Excuse]] = []
    for diag in errors:
        excuse = next((e for e in excuses if e.covers(frontend, diag)), None)
        if excuse is not None:
            excused.append((diag, excuse))
    return TuResult(unit, frontend, result.returncode, time.perf_counter() - start, result.output, errors, excused)


def default_jobs() -> int:
    return int(os.environ.get("RTFLASH_XTENSA_JOBS") or os.cpu_count() or 2)


def check_units(units: list[Unit], frontends: Iterable[str] = FRONTENDS, jobs: int | None = None,
                excuses: tuple[Excuse, ...] = EXCUSES) -> list[TuResult]:
    """Every unit under every front end, `jobs` compiles at a time (a small thread pool of subprocesses)."""
    work = [(u, f) for u in units for f in frontends]
    with ThreadPoolExecutor(max_workers=jobs or default_jobs()) as pool:
        return list(pool.map(lambda uf: check_unit(uf[0], uf[1], excuses), work))


@dataclass(frozen=True)
class Tally:
    tus: int
    clean: int     # compiled with no error
    excused: int   # failed only on excused diagnostics
    failed: int


def tally(results: list[TuResult]) -> dict[tuple[str, str], Tally]:
    """Per (group, front end): how many TUs, and how they fared."""
    out: dict[tuple[str, str], list[int]] = {}
    for r in results:
        row = out.setdefault((r.unit.group, r.frontend), [0, 0, 0, 0])
        row[0] += 1
        if r.unexcused:
            row[3] += 1
        elif r.errors or r.returncode:
            row[2] += 1
        else:
            row[1] += 1
    return {key: Tally(*row) for key, row in out.items()}


def unused_excuses(results: list[TuResult], excuses: tuple[Excuse, ...] = EXCUSES) -> list[Excuse]:
    """Excuses no diagnostic needed any more: a stale entry must go from the list."""
    used = {id(e) for r in results for _, e in r.excused}
    return [e for e in excuses if id(e) not in used]


def assemble(unit: Unit, frontend: str, source: Path, out: Path) -> str:
    """Compile `source` to assembly with `unit`'s exact flags under `frontend`; the assembly text.

    For checks on what the Xtensa compilers lay out (data bytes), where syntax alone proves nothing."""
    argv = ARGV[frontend](unit, ("-S", "-o", str(out)), source)
    result = proc.run(argv, cwd=unit.directory, check=False, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"{frontend} could not compile {source.name} with the flags of {unit.file}:\n"
                             f"{result.output[-3000:]}")
    return out.read_text()


_DATA = {".byte": 1, ".short": 2, ".2byte": 2, ".half": 2, ".hword": 2, ".word": 4, ".4byte": 4, ".long": 4,
         ".int": 4}


def data_bytes(assembly: str, symbol: str) -> bytes:
    """The initialised bytes the assembler would emit for `symbol` (little-endian: Xtensa as configured)."""
    out = bytearray()
    inside = False
    for raw in assembly.splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        if line.endswith(":"):
            if inside:
                break
            inside = line[:-1] == symbol
            continue
        if not inside:
            continue
        directive, operand = (line.split(None, 1) + [""])[:2]
        if directive in _DATA:
            for value in operand.split(","):
                out += (int(value.strip(), 0) % (1 << (8 * _DATA[directive]))).to_bytes(_DATA[directive], "little")
        elif directive in (".zero", ".space", ".skip"):
            out += bytes(int(operand.split(",")[0], 0))
        elif directive.startswith(".") and out:
            break  # .size, .section, ...: the object ended
    if not out:
        raise AssertionError(f"no data emitted for {symbol}")
    return bytes(out)


def standin_bin(pio_offline: Path) -> Path:
    """bin/ of the compile-only stand-in Xtensa tool set made by ../shared/pio-offline/make-packages.sh."""
    return pio_offline / "packages" / "toolchain-xtensa-esp-elf" / "bin"


def tool_env(pio_offline: Path) -> tuple[dict[str, str], list[str]]:
    """The real ESP-IDF's environment with the stand-in Xtensa tool set first on PATH, and what of
    that `.ci/run` installs is missing (each with how to get it): CI fails on those, never skips."""
    from testkit.shared import idf_venv, real_idf_env

    standin = standin_bin(pio_offline)
    missing = [what for ok, what in (
        ((idf_venv() / "bin" / "python").is_file(), f"ESP-IDF Python env at {idf_venv()} (bash .ci/run)"),
        ((standin / "xtensa-esp32s3-elf-gcc").is_file(), f"stand-in Xtensa tool set at {standin} (bash .ci/run)"),
        (shutil.which(CLANG) is not None, f"{CLANG} (apt-get install {CLANG})"),
        (shutil.which("xtensa-lx106-elf-gcc") is not None, "xtensa-lx106-elf-gcc (apt-get install gcc-xtensa-lx106)"),
    ) if not ok]
    env = real_idf_env()
    env["PATH"] = f"{standin}:{env['PATH']}"
    return env, missing


def reconfigure(board_name: str, project_dir: Path, deps_dir: Path, settings=None) -> Path:
    """`idf.py reconfigure` for `board_name` through rtflash's own build path, offline from `deps_dir`;
    the compile_commands.json it wrote. The environment must already hold the real ESP-IDF and the
    stand-in tool set on PATH (CMake's compiler checks need an xtensa-esp32s3-elf-gcc). `settings`:
    rtflash.toml's (e.g. [security] nvs_encryption = "hmac"), else the defaults."""
    from rtflash.boards import load_catalog
    from rtflash.builder import build_board
    from rtflash.settings import Settings

    build_board(load_catalog().get(board_name), settings or Settings(), project_dir, "idf", deps_dir=deps_dir,
                action="reconfigure")
    return project_dir / "build" / board_name / "compile_commands.json"


LIBPEER_NOT_BUILT = re.compile(r"(peer_signaling|signaling_|_test)\.c$")  # as components/peer filters them


def expected_libpeer_sources(deps_dir: Path) -> set[str]:
    """File names of libpeer's src/*.c that components/peer builds (signalling and tests are not)."""
    return {p.name for p in (deps_dir / "libpeer" / "src").glob("*.c") if not LIBPEER_NOT_BUILT.search(p.name)}


def select_project_units(compile_commands: Path, root: Path) -> list[Unit]:
    """Every C and C++ translation unit of a --firmware project's private copy (`root`), grouped by its
    top folder under the project (src, components/<name>, deps/<name>), as the build compiles it."""
    root = root.resolve()
    units = []
    for entry in json.loads(compile_commands.read_text()):
        source = _entry_source(entry)
        if source.suffix not in (".c", ".cpp", ".cc") or not source.is_relative_to(root):
            continue
        parts = source.relative_to(root).parts
        group = "/".join(parts[:2]) if parts[0] in ("components", "deps") else parts[0]
        argv = entry.get("arguments") or shlex.split(entry["command"])
        units.append(Unit(group, source, Path(entry["directory"]), tuple(argv)))
    return units
