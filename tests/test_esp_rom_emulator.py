"""The ROM-bootloader emulator itself, driven by the real esptool command line (ROM and stub paths)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit.esp_rom_emulator import SlipDecoder, slip_encode


def esptool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esptool", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "app.bin"
    path.write_bytes(os.urandom(40_000) + bytes(60_000))
    return path


def test_slip_round_trip_with_escapes():
    packet = b"\x00\xc0\xdb\xdc\xdd\xc0payload"
    decoder = SlipDecoder()
    frames = decoder.feed(b"noise" + slip_encode(packet)[:5]) + decoder.feed(slip_encode(packet)[5:])
    assert frames == [packet]


def test_rom_path_without_stub(emulators, image):
    """--no-stub: FLASH_BEGIN/DATA (uncompressed ROM writes), 4-byte status, MD5 as 32 hex chars."""
    emu = emulators()
    r = esptool("--port", emu.url, "--chip", "esp32s3", "--no-stub", "--after", "no-reset",
                "write-flash", "--no-compress", "0x10000", str(image))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Hash of data verified." in r.stdout
    assert bytes(emu.chip.flash[0x10000:0x10000 + 100_000]) == image.read_bytes()
    assert "MEM_END" not in emu.chip.commands and "FLASH_DATA" in emu.chip.commands


def test_stub_path_compressed_with_baud_change(emulators, image):
    emu = emulators()
    r = esptool("--port", emu.url, "--baud", "921600", "--after", "no-reset", "write-flash", "0x10000", str(image))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Stub flasher running." in r.stdout and "Changed." in r.stdout
    assert {"MEM_BEGIN", "MEM_DATA", "MEM_END", "CHANGE_BAUDRATE", "FLASH_DEFL_BEGIN", "FLASH_DEFL_DATA",
            "FLASH_DEFL_END", "SPI_FLASH_MD5"} <= set(emu.chip.commands)
    assert bytes(emu.chip.flash[0x10000:0x10000 + 100_000]) == image.read_bytes()


def test_read_flash_over_a_pty(emulators, image, tmp_path):
    emu = emulators(pty=True)
    emu.chip.flash[0x10000:0x10000 + 100_000] = image.read_bytes()
    out = tmp_path / "back.bin"
    r = esptool("--port", emu.url, "--before", "no-reset", "--after", "no-reset", "read-flash", "0x10000",
                "100000", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.read_bytes() == image.read_bytes()


def test_flash_id_mac_and_erase_region(emulators):
    emu = emulators(flash_mb=16, mac=bytes.fromhex("a0b1c2d3e4f5"))
    r = esptool("--port", emu.url, "flash-id")
    assert r.returncode == 0 and "Detected flash size: 16MB" in r.stdout
    assert "ESP32-S3 (QFN56) (revision v0.2)" in r.stdout and "a0:b1:c2:d3:e4:f5" in r.stdout
    emu.chip.flash[0x1000:0x3000] = bytes(0x2000)
    assert esptool("--port", emu.url, "erase-region", "0x1000", "0x1000").returncode == 0
    assert set(emu.chip.flash[0x1000:0x2000]) == {0xFF} and set(emu.chip.flash[0x2000:0x3000]) == {0}


def test_other_chip_and_unsupported_command(emulators):
    emu = emulators(chip="esp32c3")
    r = esptool("--port", emu.url, "--chip", "esp32s3", "chip-id")
    assert r.returncode != 0 and "This chip is ESP32-C3, not ESP32-S3" in r.stdout + r.stderr



def test_rom_refuses_stub_only_commands(emulators):
    """READ_FLASH (0xD2) is the stub's: the ROM answers status 1, error 0x05 (invalid message)."""
    import socket
    import struct

    from testkit.esp_rom_emulator import SlipDecoder, slip_encode

    emu = emulators()
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as s:
        s.sendall(slip_encode(struct.pack("<BBHI", 0, 0xD2, 16, 0) + struct.pack("<IIII", 0, 4096, 4096, 64)))
        decoder, frames = SlipDecoder(), []
        while not frames:
            frames = decoder.feed(s.recv(4096))
    direction, op, size, _ = struct.unpack("<BBHI", frames[0][:8])
    assert (direction, op, size, frames[0][8:]) == (1, 0xD2, 4, b"\x01\x05\x00\x00")
