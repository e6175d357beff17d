"""Is each image what it claims to be? Checked before any byte goes to a device.

App and bootloader are read with esptool's own image reader (`esptool.bin_image.LoadFirmwareImage`,
the board's chip class): magic 0xE9, every segment inside the file, the XOR checksum, the appended
SHA-256 when the header says one follows, and the chip id in the extended header. The partition
table is read as ESP-IDF's bootloader reads it (`partitions.parse_binary`), and then the images are
checked against it: the app sits at an app partition and fits it, nothing overlaps. A build that
fails here would not boot (or would boot something else); the fix is always a rebuild.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtflash.errors import ConfigError
from rtflash.partitions import Layout, TableError, parse_binary

ESP_IMAGE_MAGIC = 0xE9
BOOTLOADER_END = 0x8000  # the partition table's sector: the second-stage bootloader must end before it


class ImageError(ConfigError):
    """An image that must not be written (broken, truncated, for another chip): never --force'd."""


@dataclass(frozen=True)
class Checked:
    """What the checks found: the table's layout (None when the build writes no table)."""

    layout: Layout | None


def _fail(where: str, problem: str, board: str) -> ImageError:
    return ImageError(f"{where}: {problem}; rebuild it with `rtflash build --board {board}`")


def check_esp_image(data: bytes, chip: str, where: str, board: str) -> None:
    """One app or bootloader image: esptool reads it, then its checksum, digest and chip id must hold."""
    if len(data) < 24:
        raise _fail(where, f"is {len(data)} bytes, too short for an ESP image header", board)
    if data[0] != ESP_IMAGE_MAGIC:
        raise _fail(where, f"is not an ESP image (first byte {data[0]:#04x}, want {ESP_IMAGE_MAGIC:#04x})", board)
    from esptool.bin_image import LoadFirmwareImage

    try:
        image = LoadFirmwareImage(chip, data)
    except Exception as exc:  # noqa: BLE001 - FatalError, or struct.error/TypeError on a file cut short
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, (TypeError, IndexError)) or "unpack requires" in text:
            text = "the file ends inside a header (truncated)"
        raise _fail(where, f"esptool cannot read it: {text}", board) from None
    expected = image.ROM_LOADER.IMAGE_CHIP_ID
    if image.chip_id != expected:
        raise _fail(where, f"is built for chip id {image.chip_id} ({_chip_name(image.chip_id)}), not "
                           f"{image.ROM_LOADER.CHIP_NAME} (chip id {expected})", board)
    if image.append_digest:
        if len(image.stored_digest) < 32:
            raise _fail(where, "ends before its SHA-256 digest (truncated)", board)
        if image.stored_digest != image.calc_digest:
            raise _fail(where, "SHA-256 digest appended to it does not match its contents: corrupted", board)
    if image.checksum != image.calculate_checksum():
        raise _fail(where, f"checksum {image.checksum:#04x} does not match its segments "
                           f"({image.calculate_checksum():#04x}): corrupted", board)


def _chip_name(chip_id: int) -> str:
    from esptool.targets import CHIP_DEFS

    return next((c.CHIP_NAME for c in CHIP_DEFS.values() if getattr(c, "IMAGE_CHIP_ID", None) == chip_id),
                "an unknown chip")


def check_build(images: Sequence, chip: str, board: str, paths: dict[int, Path] | None = None) -> Checked:
    """Every image of a build (`flash.Image`s: name, offset, data) checked, and checked against the
    partition table among them. `paths` names the files in messages (offset -> path)."""
    paths = paths or {}

    def where(image) -> str:
        return str(paths.get(image.offset, image.name))

    layout = None
    table = next((i for i in images if i.name == "partition-table"), None)
    if table is not None:
        try:
            layout = parse_binary(table.data, table.offset)
        except TableError as exc:
            raise _fail(where(table), f"partition table {exc}", board) from None
    for image in images:
        if image.name in ("bootloader", "app"):
            check_esp_image(image.data, chip, where(image), board)
    ordered = sorted(images, key=lambda i: i.offset)
    for a, b in itertools.pairwise(ordered):
        if a.offset + len(a.data) > b.offset:
            raise _fail(where(a), f"{a.name} at {a.offset:#x} is {len(a.data):#x} bytes and runs into "
                                  f"{b.name} at {b.offset:#x}", board)
    if layout is not None:
        _check_against(layout, images, where, board)
    return Checked(layout)


def _check_against(layout: Layout, images: Sequence, where, board: str) -> None:
    """The app must start an app partition and fit it; every other image a partition of its own."""
    for image in images:
        if image.name in ("bootloader", "partition-table"):
            continue
        part = next((p for p in layout.partitions if p.offset == image.offset), None)
        if part is None:
            raise _fail(where(image), f"{image.name} goes to {image.offset:#x} but the partition table has no "
                                      "partition starting there", board)
        if image.name == "app" and part.type != "app":
            raise _fail(where(image), f"app goes to {image.offset:#x}, which is partition '{part.name}' "
                                      f"({part.type}/{part.subtype}), not an app partition", board)
