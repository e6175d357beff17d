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


# -- the binary table (what is written at 0x8000), read as ESP-IDF's bootloader reads it ----------
# Format: components/partition_table/gen_esp32part.py and bootloader_support/src/flash_partitions.c:
# 32-byte rows `<2sBBLL16sL` with magic 0x50AA, then one MD5 row (0xEBEB, 14 x 0xFF, MD5 of the rows
# before it), then an all-0xFF row; at most 0xC00 bytes (the rest of the 4 KB sector is for a signature).
ROW = 32
MAX_TABLE = 0xC00
ENTRY_MAGIC = b"\xaa\x50"
MD5_MAGIC = b"\xeb\xeb"
_TYPES = {0x00: "app", 0x01: "data", 0x02: "bootloader", 0x03: "partition_table"}
_SUBTYPES = {
    "app": {0x00: "factory", 0x20: "test", **{0x10 + n: f"ota_{n}" for n in range(16)}},
    "data": {0x00: "ota", 0x01: "phy", 0x02: "nvs", 0x03: "coredump", 0x04: "nvs_keys", 0x05: "efuse",
             0x06: "undefined", 0x80: "esphttpd", 0x81: "fat", 0x82: "spiffs", 0x83: "littlefs", 0x90: "tee_ota"},
}


class TableError(ConfigError):
    """A binary partition table the bootloader would reject (the message says what, not where)."""


def parse_binary(data: bytes, table_offset: int = TABLE_OFFSET) -> Layout:
    """Read a binary partition table, refusing what ESP-IDF's bootloader refuses (bad magic, a wrong or
    second MD5 row, no end marker, an empty table), and a table without its MD5 row (ESP-IDF writes one
    unless CONFIG_PARTITION_TABLE_MD5 is off; rtflash never turns it off)."""
    import hashlib
    import struct

    if len(data) > 0x1000:
        raise TableError(f"is {len(data):#x} bytes, more than its 4 KB sector at {table_offset:#x}")
    parts: list[Partition] = []
    md5_seen = False
    for index, start in enumerate(range(0, len(data), ROW)):
        row = data[start:start + ROW]
        if len(row) < ROW or start >= MAX_TABLE:
            break
        if row == b"\xff" * ROW:
            if not parts:
                raise TableError("is empty (its first row is blank)")
            if not md5_seen:
                raise TableError("has no MD5 row (0xEBEB) after its entries")
            return _checked(Layout(tuple(parts), table_offset))
        magic = row[:2]
        if magic == MD5_MAGIC:
            if md5_seen:
                raise TableError(f"row {index} is a second MD5 row (only one is allowed)")
            if row[16:] != hashlib.md5(data[:start]).digest():
                raise TableError(f"MD5 row {index} does not match the {index} entries before it (corrupted)")
            md5_seen = True
            continue
        if magic != ENTRY_MAGIC or md5_seen:
            what = "an entry after the MD5 row" if magic == ENTRY_MAGIC else f"magic {int.from_bytes(magic, 'little'):#06x}"
            raise TableError(f"row {index} has {what}, not a partition entry (magic 0x50AA)")
        _, ptype, subtype, offset, size, name, flags = struct.unpack("<2sBBLL16sL", row)
        kind = _TYPES.get(ptype, f"{ptype:#04x}")
        sub = _SUBTYPES.get(kind, {}).get(subtype, f"{subtype:#04x}")
        label = name.split(b"\x00", 1)[0].decode("ascii", "replace")
        parts.append(Partition(label, kind, sub, offset, size, "encrypted" if flags & 1 else ""))
    raise TableError("has no end-of-table marker (an all-0xFF row) in its first 0xC00 bytes")


def _checked(layout: Layout) -> Layout:
    """gen_esp32part.py's checks of a whole table: aligned offsets, app sizes in 4 KB steps, nothing
    below the table's sector, no overlaps, at least one app partition."""
    last: Partition | None = None
    floor = layout.table_offset + 0x1000
    for p in sorted(layout.partitions, key=lambda p: p.offset):
        align = APP_ALIGN if p.type == "app" else 0x1000
        if p.offset % align:
            raise TableError(f"partition '{p.name}' at {p.offset:#x} is not aligned to {align:#x}")
        if p.type == "app" and p.size % 0x1000:
            raise TableError(f"app partition '{p.name}' size {p.size:#x} is not a multiple of 0x1000")
        if p.size == 0:
            raise TableError(f"partition '{p.name}' has size 0")
        if p.offset < floor and p.type not in ("bootloader", "partition_table"):
            raise TableError(f"partition '{p.name}' at {p.offset:#x} is below {floor:#x} (the table's own sector)")
        if last is not None and p.offset < last.end:
            raise TableError(f"partition '{p.name}' at {p.offset:#x} overlaps '{last.name}' "
                             f"({last.offset:#x}-{last.end - 1:#x})")
        last = p
    if not any(p.type == "app" for p in layout.partitions):
        raise TableError("has no app partition")
    return layout


def check_inside(layout: Layout, flash_bytes: int) -> str | None:
    """The partition that ends past a flash of `flash_bytes` (the bootloader refuses the table), if any."""
    for p in layout.partitions:
        if p.end > flash_bytes:
            return (f"partition '{p.name}' ends at {p.end:#x}, past the end of a {flash_bytes // (1024 * 1024)} MB "
                    f"flash ({flash_bytes:#x})")
    return None
