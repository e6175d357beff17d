"""ESP-IDF backend: drive `idf.py` on the board's rendered project folder with layered sdkconfig defaults.

`idf.py -C build/<board>/project -B build/<board> -DSDKCONFIG=build/<board>/sdkconfig
 -DSDKCONFIG_DEFAULTS="<firmware>/sdkconfig.defaults;build/<board>/config/sdkconfig.defaults"
 -DRT_DEPS_DIR=<--deps-dir or empty> build` (`--preview` for the linux target). The project folder
(templates/project/CMakeLists.txt.j2) includes firmware-src/cmake/rt_project.cmake, so nothing is
written into firmware-src (site-packages for a pip install). RT_DEPS_DIR is passed on every run,
empty without --deps-dir: a command-line -D replaces the cached value, so an earlier --deps-dir is
never silently kept, and an unchanged value does not make idf.py reconfigure. idf.py itself decides
whether to reconfigure or relink, so a no-op build costs only its own start-up.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from rtflash.artifacts import Artifacts, linux_artifacts, load_flasher_args
from rtflash.boards import Board
from rtflash.builder.progress import run_logged
from rtflash.errors import ConfigError, ToolNotFound
from rtflash.resources import firmware_dir

MIN_VERSION = (5, 4)
ACTIONS = ("build", "reconfigure")


def idf_py_argv() -> list[str]:
    """How to start idf.py: on PATH (after export.sh), else $IDF_PATH/tools/idf.py with this Python."""
    found = shutil.which("idf.py")
    if found:
        return [found]
    idf_path = os.environ.get("IDF_PATH")
    if idf_path and (Path(idf_path) / "tools" / "idf.py").is_file():
        return [sys.executable, str(Path(idf_path) / "tools" / "idf.py")]
    if idf_path:
        raise ToolNotFound(f"IDF_PATH={idf_path} is not an ESP-IDF tree (no tools/idf.py there): point IDF_PATH "
                           "at your esp-idf checkout and run `. $IDF_PATH/export.sh`, or unset it and use "
                           "--backend pio")
    raise ToolNotFound("idf.py not found: install ESP-IDF v5.4+ and run `. $IDF_PATH/export.sh`, "
                       "or use --backend pio")


XTENSA_TARGETS = ("esp32", "esp32s2", "esp32s3")


def compiler_for(target: str) -> str | None:
    """The cross compiler ESP-IDF's export.sh puts on PATH for a target (None for linux: the host's)."""
    if target == "linux":
        return None
    return f"xtensa-{target}-elf-gcc" if target in XTENSA_TARGETS else "riscv32-esp-elf-gcc"


def toolchain_missing(target: str, path: str | None = None) -> str | None:
    """Why ESP-IDF cannot build `target` here for want of its compiler (one line with the fix), else None."""
    gcc = compiler_for(target)
    if gcc is None or shutil.which(gcc, path=path):
        return None
    return (f"ESP-IDF is active but its {target} toolchain is not: {gcc} is not on PATH; run "
            f"`$IDF_PATH/install.sh {target}` (or `python $IDF_PATH/tools/idf_tools.py install`) and then "
            "`. $IDF_PATH/export.sh`, or use --backend pio, which installs its own toolchain")


def idf_version() -> tuple[int, int, int] | None:
    from rtflash.doctor import idf_version as read_version

    idf_path = os.environ.get("IDF_PATH")
    return read_version(Path(idf_path)) if idf_path else None


def configured_target(sdkconfig: Path) -> str | None:
    try:
        for line in sdkconfig.read_text(encoding="utf-8").splitlines():
            if line.startswith("CONFIG_IDF_TARGET="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        return None
    return None


def build_env(board: Board, deps_dir: Path | None) -> dict[str, str]:
    """Environment for idf.py: the target, and for --deps-dir builds the local deps. When DIR/components
    holds the registry components (<ns>__<name>), rt_project.cmake adds them and the component manager
    is turned off, so nothing is looked up online and nothing is written into managed_components/."""
    env = {"IDF_TARGET": board.idf_target}
    if deps_dir is not None:
        env["RTFLASH_DEPS_DIR"] = str(deps_dir)
        if (deps_dir / "components").is_dir():
            env["IDF_COMPONENT_MANAGER"] = "0"
    return env


def linux_stubs_present(board: Board) -> None:
    """The upstream SDK's linux build adds $IDF_PATH/examples/protocols/linux_stubs/esp_stubs, which a
    trimmed ESP-IDF may lack: one line instead of CMake's obscure component error."""
    idf_path = os.environ.get("IDF_PATH")
    if board.is_linux and idf_path and not (Path(idf_path) / "examples/protocols/linux_stubs/esp_stubs").is_dir():
        raise ToolNotFound(f"{idf_path}/examples/protocols/linux_stubs/esp_stubs is missing (a trimmed ESP-IDF): the "
                           "SDK's linux build needs it; use a full ESP-IDF v5.5 checkout")


class IdfBackend:
    name = "idf"

    def unavailable(self, board: Board) -> str | None:
        try:
            idf_py_argv()
        except ToolNotFound as exc:
            if board.is_linux:  # PlatformIO cannot build linux: do not send the user there and back
                return ("idf.py not found, and the linux target builds only with ESP-IDF: install ESP-IDF v5.4+ "
                        "and run `. $IDF_PATH/export.sh`")
            return str(exc)
        version = idf_version()
        if version is not None and version[:2] < MIN_VERSION:
            return f"ESP-IDF v{'.'.join(map(str, version))} is too old: firmware-src needs v5.4 or newer"
        return toolchain_missing(board.idf_target)

    def argv(self, board: Board, project_dir: Path, config_dir: Path, deps_dir: Path | None = None,
             action: str = "build", external=None) -> list[str]:
        from rtflash.render import project_dir_of

        build_dir = config_dir.parent
        if external is not None:  # --firmware DIR: its private copy, its defaults then the board's, the target
            argv = [*idf_py_argv(), "-C", str(external.project), "-B", str(build_dir),
                    f"-DSDKCONFIG={build_dir / 'sdkconfig'}",
                    f"-DSDKCONFIG_DEFAULTS={';'.join(str(p) for p in external.layers)}",
                    f"-DIDF_TARGET={board.idf_target}"]  # as an environment variable alone the SDK's linux CMake fails
        else:
            firmware = firmware_dir()
            layers = [p for p in (firmware / "sdkconfig.defaults", config_dir / "sdkconfig.defaults") if p.is_file()]
            argv = [*idf_py_argv(), "-C", str(project_dir_of(config_dir)), "-B", str(build_dir),
                    f"-DSDKCONFIG={build_dir / 'sdkconfig'}",
                    f"-DSDKCONFIG_DEFAULTS={';'.join(str(p) for p in layers)}",
                    f"-DRT_DEPS_DIR={deps_dir or ''}"]  # cmake/rt_deps.cmake: local copies (offline), or the cache
        if board.is_linux:
            argv.append("--preview")
        from rtflash.builder.progress import ccache_available

        if ccache_available():
            argv.append("--ccache")
        return [*argv, action]

    def build(self, board: Board, project_dir: Path, config_dir: Path, on_line, deps_dir: Path | None = None,
              action: str = "build", external=None) -> Artifacts | None:
        why = self.unavailable(board)
        if why:
            raise ToolNotFound(why)
        build_dir = config_dir.parent
        existing = configured_target(build_dir / "sdkconfig")
        if existing and existing != board.idf_target:
            raise ConfigError(f"{build_dir} was configured for {existing}, board {board.name} is {board.idf_target}; "
                              f"rerun with --clean")
        if action not in ACTIONS:
            raise ConfigError(f"unknown idf.py action '{action}'; use one of {', '.join(ACTIONS)}")
        env = build_env(board, deps_dir)
        if external is not None:
            env.update(external.env)
            linux_stubs_present(board)
        run_logged(self.argv(board, project_dir, config_dir, deps_dir, action, external), build_dir, "idf",
                   board.name, on_line, env=env)
        if action != "build":
            return None
        if board.is_linux:
            return linux_artifacts(build_dir, board.name)
        return load_flasher_args(build_dir, board.name)
