"""Partition layouts: the table rtflash renders for a board, and a reader for any ESP-IDF CSV table.

The flash and credentials stages read the rendered CSV back (not the layout function) so that a
hand-edited table in a user's build dir is what gets checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rtflash.errors import ConfigError

TABLE_OFFSET = 0x8000
NVS_OFFSET = 0x9000
NVS_SIZE = 0x6000  # 6 pages of 4 KiB: credentials use well under one; NVS keeps one page free.
APP_ALIGN = 0x10000
_SUFFIX = {"K": 1024, "M": 1024 * 1024}


@dataclass(frozen=True)
class Partition:
    name: str
    type: str
    subtype: str
    offset: int
    size: int
    flags: str = ""

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Layout:
    partitions: tuple[Partition, ...]
    table_offset: int = TABLE_OFFSET

    def find(self, name: str) -> Partition | None:
        return next((p for p in self.partitions if p.name == name), None)

    @property
    def app(self) -> Partition:
        """The partition the bootloader starts first: factory, else ota_0."""
        apps = [p for p in self.partitions if p.type == "app"]
        return next((p for p in apps if p.subtype == "factory"), apps[0])

    @property
    def app_size(self) -> int:
        return self.app.size


def layout_for(flash_bytes: int) -> Layout:
    """nvs + phy_init + one factory app for small flash; two OTA slots from 8 MB up."""
    if flash_bytes >= 8 * 1024 * 1024:
        slot = ((flash_bytes - 0x20000) // 2) & ~(APP_ALIGN - 1)
        parts = (
            Partition("nvs", "data", "nvs", NVS_OFFSET, NVS_SIZE),
            Partition("otadata", "data", "ota", 0xF000, 0x2000),
            Partition("phy_init", "data", "phy", 0x11000, 0x1000),
            Partition("ota_0", "app", "ota_0", 0x20000, slot),
            Partition("ota_1", "app", "ota_1", 0x20000 + slot, slot),
        )
    else:
        parts = (
            Partition("nvs", "data", "nvs", NVS_OFFSET, NVS_SIZE),
            Partition("phy_init", "data", "phy", 0xF000, 0x1000),
            Partition("factory", "app", "factory", 0x10000, (flash_bytes - 0x10000) & ~(APP_ALIGN - 1)),
        )
    return Layout(parts)


def _number(text: str, where: str) -> int:
    text = text.strip()
    try:
        if text[-1:].upper() in _SUFFIX:
            return int(text[:-1], 0) * _SUFFIX[text[-1].upper()]
        return int(text, 0)
    except ValueError:
        raise ConfigError(f"{where}: '{text}' is not a number (use 0x10000, 64K or 1M)") from None


def parse_csv(text: str, source: str = "partitions.csv", table_offset: int = TABLE_OFFSET) -> Layout:
    """Read an ESP-IDF partition CSV; empty offsets follow the previous partition (apps 64K-aligned)."""
    parts: list[Partition] = []
    cursor = table_offset + 0x1000
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        cells = [c.strip() for c in line.split(",")] + [""] * 6
        name, ptype, subtype, offset, size, flags = cells[:6]
        where = f"{source}:{lineno}"
        if not name or not ptype or not size:
            raise ConfigError(f"{where}: a partition needs name, type, subtype, offset, size")
        align = APP_ALIGN if ptype == "app" else 0x1000
        start = _number(offset, where) if offset else (cursor + align - 1) & ~(align - 1)
        length = _number(size, where)
        if start < cursor:
            raise ConfigError(f"{where}: {name} at {start:#x} overlaps the previous partition (ends {cursor:#x})")
        parts.append(Partition(name, ptype, subtype, start, length, flags))
        cursor = start + length
    if not any(p.type == "app" for p in parts):
        raise ConfigError(f"{source}: no app partition; add a factory or ota_0 partition")
    return Layout(tuple(parts), table_offset)


def read_csv(path: Path) -> Layout:
    try:
        return parse_csv(Path(path).read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read partition table: {exc.strerror}; run `rtflash render`") from None
