"""PlatformIO backend: `pio run -e <board>` on firmware-src with the board's rendered platformio.ini.

PlatformIO downloads its espressif32 platform and toolchains on first use; offline it retries for
about a minute and then fails with an empty `HTTPClientError`. So before running it, ask the real
`pio` which platforms are installed (local, fast) and, when espressif32 is missing, whether the
registry is reachable at all: no network means one clear error in seconds.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

from rtflash import proc
from rtflash.artifacts import Artifacts, FlashRegion
from rtflash.boards import Board
from rtflash.builder.progress import run_logged
from rtflash.errors import ToolFailed, ToolNotFound
from rtflash.partitions import read_csv
from rtflash.resources import firmware_dir

REGISTRY = ("api.registry.platformio.org", 443)


def pio_path() -> str:
    found = shutil.which("pio") or shutil.which("pio", path=str(Path(sys.executable).parent))
    if not found:
        raise ToolNotFound("pio not found: pip install platformio, or use --backend idf")
    return found


def installed_platforms(pio: str) -> list[str]:
    """Names of the platforms PlatformIO has installed, from the real pio (no network needed)."""
    result = proc.run([pio, "platform", "list", "--json-output"], timeout=60)
    text = result.output[result.output.find("["):] if "[" in result.output else "[]"
    return [p.get("name", "") for p in json.loads(text)]


def registry_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(REGISTRY, timeout=timeout):
            return True
    except OSError:
        return False


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

    def ensure_platform(self, pio: str) -> None:
        if "espressif32" in installed_platforms(pio):
            return
        if not registry_reachable():
            raise ToolFailed("PlatformIO's espressif32 platform is not installed and the PlatformIO registry "
                             "is unreachable (no network?): connect once and run `pio pkg install -g -p "
                             "espressif32`, or use --backend idf with an installed ESP-IDF")

    def build(self, board: Board, project_dir: Path, config_dir: Path, on_line, deps_dir: Path | None = None) -> Artifacts:
        why = self.unavailable(board)
        if why:
            raise ToolNotFound(why)
        pio = pio_path()
        self.ensure_platform(pio)
        build_dir = project_dir / "build" / board.name
        argv = [pio, "run", "-d", str(firmware_dir()), "-c", str(config_dir / "platformio.ini"), "-e", board.name]
        # firmware-src/cmake/rt_deps.cmake reads RTFLASH_DEPS_DIR (local copies, offline build)
        env = {"RTFLASH_DEPS_DIR": str(deps_dir)} if deps_dir is not None else None
        run_logged(argv, build_dir, "pio", board.name, on_line, env=env)
        return pio_artifacts(board, build_dir / "pio" / board.name, config_dir)


def pio_artifacts(board: Board, env_dir: Path, config_dir: Path) -> Artifacts:
    """PlatformIO's outputs (bootloader.bin, partitions.bin, firmware.bin/.elf) as Artifacts."""
    app = read_csv(config_dir / "partitions.csv").app
    regions = tuple(r for r in (FlashRegion("bootloader", 0x0, env_dir / "bootloader.bin"),
                                FlashRegion("partition-table", 0x8000, env_dir / "partitions.bin"),
                                FlashRegion("app", app.offset, env_dir / "firmware.bin")))
    missing = [str(r.path) for r in regions if not r.path.is_file()]
    if missing:
        raise ToolFailed(f"PlatformIO finished but {missing[0]} is missing; rebuild with --clean")
    return Artifacts(board.name, board.chip, env_dir, regions, "dio", "80m", board.flash_size,
                     env_dir / "firmware.elf")
