"""Check rendered sdkconfig defaults against a Kconfig tree with Espressif's kconfgen.

kconfgen accepts almost anything: it only notes unknown symbols, maps renamed ones, and silently
drops assignments whose `depends on` is unmet or which lose a choice. So after running it the way
ESP-IDF's tools/cmake/kconfig.cmake does, every assignment of every defaults layer is compared with
the final configuration, and each one that did not survive is reported with its file and line.

Without an ESP-IDF tree ($IDF_PATH) only the firmware's own Kconfig is known, so only CONFIG_RT_*
assignments can be checked; the rest are listed as unchecked, never passed as ok. With one, only the
Kconfig files of the components in the target's build are read, as ESP-IDF does (rtflash.components).

A renamed symbol is a warning, not an error: ESP-IDF applies sdkconfig.rename, so the build gets the
value; the new name is then checked like any other.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rtflash.errors import ConfigError

# firmware-src/cmake/rt_project.cmake: the linux build's `set(COMPONENTS main)` (tests keep them equal).
LINUX_COMPONENTS = ["main"]
_ASSIGN = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^#\s*CONFIG_([A-Za-z0-9_]+) is not set\s*$")
_UNKNOWN = re.compile(r"unknown kconfig symbol '([A-Za-z0-9_]+)'")
_INVISIBLE = re.compile(r"\b([A-Za-z0-9_]+) has user-set value .* but is not visible")
_RANGE = re.compile(r"user value \S+ on the \w+ symbol ([A-Za-z0-9_]+) .*outside the active range")


@dataclass(frozen=True)
class Assignment:
    symbol: str
    value: str
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Problem:
    kind: str  # unknown | renamed | dropped | range | changed
    assignment: Assignment
    detail: str

    def __str__(self) -> str:
        return f"{self.assignment.where}: CONFIG_{self.assignment.symbol}: {self.detail}"


@dataclass(frozen=True)
class Tree:
    """What kconfgen reads: a root Kconfig, component Kconfigs, projbuild files, rename files."""

    root: Path | None
    kconfigs: tuple[Path, ...]
    projbuilds: tuple[Path, ...]
    renames: tuple[Path, ...]
    idf_path: Path | None = None
    only_prefix: str = ""  # when set, only symbols with this prefix are checkable
    components: str = ""  # how the component set was found: "configured", "expanded" or "" (none)


@dataclass
class Report:
    tree: Tree
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    unchecked: list[Assignment] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_defaults(path: Path) -> list[Assignment]:
    """Every CONFIG_ assignment (and `# CONFIG_X is not set`) of one defaults file, with its line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read defaults file: {exc.strerror}") from None
    found = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if m := _ASSIGN.match(line):
            found.append(Assignment(m.group(1), m.group(2).strip(), path, number))
        elif m := _UNSET.match(line):
            found.append(Assignment(m.group(1), "n", path, number))
    return found


def firmware_tree(firmware: Path) -> Tree:
    """The firmware's own Kconfig only (no ESP-IDF): CONFIG_RT_* symbols are checkable."""
    firmware = firmware.resolve()
    projbuilds = sorted(firmware.glob("main/Kconfig.projbuild")) + sorted(firmware.glob("components/*/Kconfig.projbuild"))
    kconfigs = sorted(firmware.glob("components/*/Kconfig"))
    return Tree(None, tuple(kconfigs), tuple(projbuilds), (), None, "RT_")


def idf_tree(idf_path: Path, firmware: Path, target: str = "esp32s3", build_dir: Path | None = None,
             extra_dirs: tuple[Path, ...] = ()) -> Tree:
    """ESP-IDF's tree plus the firmware's, as kconfig.cmake collects them: the Kconfig, Kconfig.projbuild
    and sdkconfig.rename(.<target>) files of the components in the build. The component set comes from
    `build_dir`'s project_description.json when configured, else from ESP-IDF's early expansion over
    ESP-IDF, firmware-src and `extra_dirs` (e.g. the deps' registry components)."""
    from rtflash import components

    if not (idf_path / "Kconfig").is_file():
        raise ConfigError(f"IDF_PATH={idf_path} has no Kconfig; point IDF_PATH at an ESP-IDF checkout")
    firmware = firmware.resolve()
    found = components.from_project_description(build_dir) if build_dir else None
    if found is None:
        dirs = [firmware / "main", firmware / "components", *extra_dirs]
        found = components.expand(idf_path, target, [d for d in dirs if d.is_dir()], LINUX_COMPONENTS
                                  if target == "linux" else None)
    return tree_of(idf_path, found, target)


def tree_of(idf_path: Path, found, target: str) -> Tree:
    """The Kconfig tree of a known component set (rtflash.components.BuildComponents)."""
    if not (idf_path / "Kconfig").is_file():
        raise ConfigError(f"IDF_PATH={idf_path} has no Kconfig; point IDF_PATH at an ESP-IDF checkout")
    dirs = found.dirs
    renames = [p for d in dirs for p in (d / "sdkconfig.rename", d / f"sdkconfig.rename.{target}") if p.is_file()]
    return Tree(
        idf_path / "Kconfig",
        tuple(d / "Kconfig" for d in dirs if (d / "Kconfig").is_file()),
        tuple(d / "Kconfig.projbuild" for d in dirs if (d / "Kconfig.projbuild").is_file()),
        tuple(renames) + tuple(p for p in (idf_path / "sdkconfig.rename",) if p.is_file()),
        idf_path,
        components=found.source,
    )


def read_renames(tree: Tree, target: str) -> dict[str, str]:
    """sdkconfig.rename(.<target>) files: `CONFIG_OLD CONFIG_NEW` -> {OLD: NEW}; a leading ! on NEW
    (an inverted boolean) is kept on the value."""
    renames: dict[str, str] = {}
    files = list(tree.renames) + [p.with_name(f"sdkconfig.rename.{target}") for p in tree.renames]
    for path in dict.fromkeys(files):
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) == 2 and parts[0].startswith("CONFIG_"):
                new = parts[1]
                renames[parts[0][7:]] = ("!" if new.startswith("!") else "") + new.lstrip("!").removeprefix("CONFIG_")
    return renames


def run_kconfgen(tree: Tree, layers: list[Path], target: str, work: Path) -> tuple[dict, str]:
    """Run kconfgen over the tree with the defaults layers; return (final config as JSON, its notes)."""
    from rtflash import proc

    kin, pin = work / "kconfigs.in", work / "kconfigs_projbuild.in"
    kin.write_text("".join(f'source "{p}"\n' for p in tree.kconfigs))
    pin.write_text("".join(f'source "{p}"\n' for p in tree.projbuilds))
    root = tree.root
    if root is None:
        root = work / "Kconfig"
        root.write_text('mainmenu "rtflash firmware"\nsource "$COMPONENT_KCONFIGS_SOURCE_FILE"\n'
                        'source "$COMPONENT_KCONFIGS_PROJBUILD_SOURCE_FILE"\n')
    renames = work / "renames.txt"
    renames.write_text("".join(f"{p}\n" for p in tree.renames))
    env = {"IDF_TARGET": target, "IDF_PATH": str(tree.idf_path or work), "IDF_ENV_FPGA": "",
           "IDF_TOOLCHAIN": "gcc", "IDF_INIT_VERSION": "", "IDF_MINIMAL_BUILD": "n",
           "COMPONENT_KCONFIGS_SOURCE_FILE": str(kin), "COMPONENT_KCONFIGS_PROJBUILD_SOURCE_FILE": str(pin)}
    argv = [sys.executable, "-m", "kconfgen", "--kconfig", str(root), "--list-separator", "semicolon",
            "--output", "json", str(work / "sdkconfig.json"), "--config", str(work / "sdkconfig")]
    for path in tree.renames:
        argv += ["--sdkconfig-rename", str(path)]
    for layer in layers:
        argv += ["--defaults", str(layer)]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    result = proc.run(argv, cwd=work, check=False, timeout=300)
    out = work / "sdkconfig.json"
    if result.returncode != 0 or not out.is_file():
        last = result.output.strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"kconfgen failed on the Kconfig tree: {last[0]}")
    return json.loads(out.read_text()), result.output


def _normalise(value: str):
    value = value.strip()
    if value in ("y", "n"):
        return value == "y"
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    try:
        return int(value, 0)
    except ValueError:
        return value


def check(layers: list[Path], tree: Tree, target: str) -> Report:
    """Run kconfgen and compare every assignment of `layers` (later wins) with the final config."""
    report = Report(tree)
    final_by_symbol: dict[str, Assignment] = {}
    for layer in layers:
        for a in parse_defaults(layer):
            final_by_symbol[a.symbol] = a
    renames = read_renames(tree, target)
    with tempfile.TemporaryDirectory(prefix="rtflash-kconfig-") as tmp:
        final, notes = run_kconfgen(tree, [p for p in layers if p.is_file()], target, Path(tmp))
    unknown = set(_UNKNOWN.findall(notes))
    invisible = set(_INVISIBLE.findall(notes))
    out_of_range = set(_RANGE.findall(notes))
    for a in final_by_symbol.values():
        if tree.only_prefix and not a.symbol.startswith(tree.only_prefix):
            report.unchecked.append(a)
            continue
        report.checked += 1
        symbol, inverted = a.symbol, False
        if symbol in renames:
            new = renames[symbol]
            inverted, symbol = new.startswith("!"), new.lstrip("!")
            report.warnings.append(Problem("renamed", a, f"renamed to CONFIG_{symbol}{' (inverted)' if inverted else ''}"
                                           " (ESP-IDF applies the rename); use the new name"))
        if symbol in unknown:
            report.problems.append(Problem("unknown", a, "unknown symbol: no Kconfig defines it (typo, or a "
                                           "component that is not in the build)"))
            continue
        wanted, got = _normalise(a.value), final.get(symbol)
        if inverted and isinstance(wanted, bool):
            wanted = not wanted
        if got is None and wanted is False:
            continue
        if got == wanted:
            continue
        if symbol in out_of_range:
            kind, why = "range", f"{a.value} is outside the symbol's range; the default {got!r} was used"
        elif symbol in invisible or got is None:
            kind, why = "dropped", "dropped: its `depends on` is not met (or its choice was not taken)"
        else:
            kind, why = "changed", f"ends up as {got!r}, not {a.value} (another option or a choice overrides it)"
        report.problems.append(Problem(kind, a, why))
    return report
