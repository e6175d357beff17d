"""What a build produced, in one value: the flasher (flash.py) and CI (ci) read only this.

ESP-IDF describes its outputs in `<build>/flasher_args.json` (written by tools/cmake/project.cmake):
`flash_settings` (flash_mode/flash_size/flash_freq), `flash_files` (offset -> path relative to the
build dir), per-part entries (`bootloader`, `partition-table`, `app`, `otadata`, ...) and
`extra_esptool_args` (`chip`, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ConfigError


@dataclass(frozen=True)
class FlashRegion:
    """One image to write: `name` is flasher_args.json's part name ("bootloader", "app", ...)."""

    name: str
    offset: int
    path: Path


@dataclass(frozen=True)
class Artifacts:
    board: str
    chip: str
    build_dir: Path
    regions: tuple[FlashRegion, ...]  # sorted by offset
    flash_mode: str = "dio"
    flash_freq: str = "80m"
    flash_size: str = "keep"
    elf: Path | None = None

    def region(self, name: str) -> FlashRegion | None:
        return next((r for r in self.regions if r.name == name), None)

    @property
    def app(self) -> FlashRegion | None:
        return self.region("app")


def load_flasher_args(build_dir: Path, board: str = "") -> Artifacts:
    """Read an ESP-IDF build dir's flasher_args.json into Artifacts."""
    build_dir = Path(build_dir)
    path = build_dir / "flasher_args.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; build first: rtflash build --board {board or 'NAME'}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); rebuild with rtflash build") from None
    names = {part["file"]: name for name, part in data.items()
             if isinstance(part, dict) and "offset" in part and "file" in part}
    regions = tuple(sorted(
        (FlashRegion(names.get(rel, Path(rel).stem), int(off, 16), build_dir / rel)
         for off, rel in data.get("flash_files", {}).items()),
        key=lambda r: r.offset))
    settings = data.get("flash_settings", {})
    chip = data.get("extra_esptool_args", {}).get("chip", "")
    elf = _find_elf(build_dir)
    return Artifacts(board or build_dir.name, chip, build_dir, regions, settings.get("flash_mode", "dio"),
                     settings.get("flash_freq", "80m"), settings.get("flash_size", "keep"), elf)


def _find_elf(build_dir: Path) -> Path | None:
    """The app ELF named in project_description.json (`app_elf`), if the build dir has one."""
    desc = build_dir / "project_description.json"
    try:
        elf = json.loads(desc.read_text(encoding="utf-8")).get("app_elf")
    except (OSError, ValueError):
        return None
    return build_dir / elf if elf else None
