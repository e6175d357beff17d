"""Which ESP-IDF components a build contains, so `rtflash check` sources the Kconfig files ESP-IDF does.

ESP-IDF does not read every component's Kconfig: tools/cmake/kconfig.cmake takes only the components
in the build, i.e. those whose CMakeLists.txt registers for the target (bt, for instance, returns
early on linux, and its Kconfig sources a per-target file that linux does not have), expanded from the
project's COMPONENTS through REQUIRES. Two ways to know that set, most exact first:

1. a configured build dir: ESP-IDF wrote `project_description.json` with `build_component_paths`;
2. otherwise ESP-IDF's own early-expansion script (tools/cmake/scripts/component_get_requirements.cmake,
   run with `cmake -P` exactly as tools/cmake/component.cmake runs it) over every candidate component,
   keeping those that register for the target, closed under their requirements.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rtflash.errors import ConfigError

# tools/cmake/build.cmake (v5.x): the requirements every component gets, per target family.
COMMON_REQUIRES = {
    "linux": ("freertos", "esp_hw_support", "heap", "log", "soc", "hal", "esp_rom", "esp_common",
              "esp_system", "linux"),
    "default": ("cxx", "newlib", "freertos", "esp_hw_support", "heap", "log", "soc", "hal", "esp_rom",
                "esp_common", "esp_system"),
}
_SET_PROPERTY = re.compile(r'__component_set_property\((___idf_\S+) (\w+) "?([^")]*)"?\)')


@dataclass(frozen=True)
class BuildComponents:
    """The component directories of a build, and how the set was found ("configured" or "expanded")."""

    dirs: tuple[Path, ...]
    source: str


def from_project_description(build_dir: Path) -> BuildComponents | None:
    """The exact set from a configured build dir, or None when there is none (or it is unreadable)."""
    path = Path(build_dir) / "project_description.json"
    try:
        paths = json.loads(path.read_text(encoding="utf-8"))["build_component_paths"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return BuildComponents(tuple(Path(p) for p in paths), "configured")


def candidate_dirs(idf_path: Path, extra_dirs: list[Path]) -> list[Path]:
    """ESP-IDF's components, then the project's: a dir with a CMakeLists.txt is one component, any
    other dir holds components (as EXTRA_COMPONENT_DIRS is read)."""
    found: list[Path] = []
    for base in [idf_path / "components", *extra_dirs]:
        if (base / "CMakeLists.txt").is_file() and base != idf_path / "components":
            found.append(base)
        elif base.is_dir():
            found += sorted(p for p in base.iterdir() if (p / "CMakeLists.txt").is_file())
    return found


def expand(idf_path: Path, target: str, extra_dirs: list[Path], components: list[str] | None = None,
           work: Path | None = None) -> BuildComponents:
    """Run ESP-IDF's early expansion over the candidates; keep registered ones reachable from
    `components` (all registered ones when None). Later dirs override earlier ones of the same name."""
    from rtflash import proc

    script = idf_path / "tools/cmake/scripts/component_get_requirements.cmake"
    if not script.is_file():
        raise ConfigError(f"IDF_PATH={idf_path} is not an ESP-IDF v5.x tree (no {script.relative_to(idf_path)}); "
                          "point IDF_PATH at ESP-IDF v5.4 or newer")
    by_name: dict[str, Path] = {}
    for d in candidate_dirs(idf_path, extra_dirs):
        by_name[d.name] = d
    targets = {name: f"___idf_{name}" for name in by_name}
    common = COMMON_REQUIRES["linux" if target == "linux" else "default"]
    build_props = (f'set(IDF_PATH "{idf_path}")\nset(IDF_TARGET "{target}")\nset(__PREFIX "idf")\n'
                   f'set(__COMPONENT_TARGETS "{";".join(targets.values())}")\n'
                   f'set(__COMPONENT_REQUIRES_COMMON "{";".join(common)}")\n')
    comp_props = "".join(
        f'set(__component_{t}_COMPONENT_DIR "{by_name[n]}")\nset(__component_{t}_COMPONENT_NAME "{n}")\n'
        f'set(__component_{t}_COMPONENT_ALIAS "idf::{n}")\n'
        f'set(__component_{t}_COMPONENT_SOURCE "{"idf_components" if by_name[n].is_relative_to(idf_path) else "project_extra_components"}")\n'
        for n, t in targets.items())
    with tempfile.TemporaryDirectory(prefix="rtflash-components-", dir=work) as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "build.cmake").write_text(build_props)
        (tmp_path / "components.cmake").write_text(comp_props)
        out = tmp_path / "requires.cmake"
        result = proc.run(["cmake", "-D", "ESP_PLATFORM=1", "-D", f"BUILD_PROPERTIES_FILE={tmp_path / 'build.cmake'}",
                           "-D", f"COMPONENT_PROPERTIES_FILE={tmp_path / 'components.cmake'}",
                           "-D", f"COMPONENT_REQUIRES_FILE={out}",
                           "-P", str(script)],
                          check=False, timeout=120)
        if result.returncode != 0 or not out.is_file():
            last = (result.output.strip().splitlines() or ["no output"])[-1]
            raise ConfigError(f"ESP-IDF's component expansion failed ({idf_path}): {last}")
        props: dict[str, dict[str, str]] = {}
        for t, prop, value in _SET_PROPERTY.findall(out.read_text(encoding="utf-8")):
            props.setdefault(t.removeprefix("___idf_"), {})[prop] = value
    registered = {n for n, p in props.items() if p.get("__COMPONENT_REGISTERED") == "1"}
    todo = [c for c in (components if components is not None else sorted(registered)) if c in registered]
    todo += [c for c in common if c in registered]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in registered:
            continue
        seen.add(name)
        for key in ("REQUIRES", "PRIV_REQUIRES"):
            todo += [r.removeprefix("idf::") for r in props[name].get(key, "").split(";") if r]
    return BuildComponents(tuple(by_name[n] for n in sorted(seen)), "expanded")
