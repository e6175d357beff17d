"""rtflash.images: every image checked with esptool's own reader before a byte is written."""

from __future__ import annotations

import pytest

from rtflash.flash import Image
from rtflash.images import ImageError, check_build, check_esp_image
from tests.test_partitions import GOOD_ROWS, _row, _table


def esp_image(chip: str = "esp32s3", size: int = 8192, digest: bool = True, seed: int = 1,
              bootloader: bool = False) -> bytes:
    """An image as ESP-IDF's elf2image writes it, made with esptool's own image class for `chip`."""
    import random

    from esptool.bin_image import ELFSection, ESP32C3FirmwareImage, ESP32S3FirmwareImage

    rng = random.Random(seed)
    img = {"esp32s3": ESP32S3FirmwareImage, "esp32c3": ESP32C3FirmwareImage}[chip]()
    img.entrypoint = 0x40375000
    if bootloader:  # loaded into RAM by the ROM: no flash-mapped segments (so no 64 KB padding)
        img.segments = [ELFSection(b".dram0.data", 0x3FCE2700, rng.randbytes(4096), 0),
                        ELFSection(b".iram0.text", 0x403C8700, rng.randbytes(size), 0)]
    else:
        img.segments = [ELFSection(b".flash.rodata", 0x3C000020, rng.randbytes(4096), 0),
                        ELFSection(b".flash.text", 0x42000020, rng.randbytes(size), 0)]
    img.append_digest = digest
    return img.save(None)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1:]


def test_a_good_image_passes_with_and_without_digest():
    check_esp_image(esp_image(), "esp32s3", "app.bin", "b")
    check_esp_image(esp_image(digest=False), "esp32s3", "app.bin", "b")


@pytest.mark.parametrize("make, words", [
    (lambda: b"", "is 0 bytes, too short"),
    (lambda: b"\x00" * 4096, "not an ESP image (first byte 0x00, want 0xe9)"),
    (lambda: esp_image()[:3000], "esptool cannot read it"),
    (lambda: esp_image()[:30], "esptool cannot read it"),
    (lambda: esp_image()[:-20], "ends before its SHA-256 digest"),
    (lambda: _flip(esp_image(), 2000), "SHA-256 digest appended to it does not match"),
    (lambda: _flip(esp_image(digest=False), 2000), "checksum"),
    (lambda: esp_image("esp32c3"), "chip id 5 (ESP32-C3), not ESP32-S3 (chip id 9)"),
])
def test_broken_images_are_named_with_the_fix(make, words):
    with pytest.raises(ImageError) as err:
        check_esp_image(make(), "esp32s3", "build/b/app.bin", "b")
    line = str(err.value)
    assert line.startswith("build/b/app.bin: ") and words in line and "rtflash build --board b" in line
    assert "\n" not in line


def _build(app: bytes | None = None, table: bytes | None = None, app_at: int = 0x10000) -> list[Image]:
    return [Image("bootloader", 0x0, esp_image(size=16384, bootloader=True)), Image("partition-table", 0x8000, table or _table(GOOD_ROWS)),
            Image("app", app_at, app or esp_image())]


def test_check_build_reads_the_table_it_writes():
    checked = check_build(_build(), "esp32s3", "b")
    assert checked.layout is not None and checked.layout.app.name == "factory"


@pytest.mark.parametrize("images, words", [
    (_build(app_at=0x20000), "app goes to 0x20000 but the partition table has no partition starting there"),
    (_build(table=_table([_row("nvs", 1, 2, 0x9000, 0x6000), _row("storage", 1, 0x81, 0x10000, 0x100000),
                             _row("factory", 0, 0, 0x200000, 0x100000)])),
     "which is partition 'storage' (data/fat), not an app partition"),
    (_build(table=b"\x00" * 0xC00), "partition-table: partition table row 0 has magic 0x0000"),
    ([Image("bootloader", 0x0, esp_image(size=0x9000, bootloader=True)), *_build()[1:]], "runs into partition-table at 0x8000"),
])
def test_check_build_checks_images_against_the_table(images, words):
    with pytest.raises(ImageError) as err:
        check_build(images, "esp32s3", "b")
    assert words in str(err.value)
