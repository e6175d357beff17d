"""rtflash.flash against a real esptool talking to the emulated ROM bootloader."""

from __future__ import annotations

import random

import pytest

from rtflash import esptool_log, flash
from rtflash.boards import load_catalog

SECTOR = 0x1000


@pytest.fixture
def board():
    return load_catalog(None).get("sonatino")


@pytest.fixture
def opts(tmp_path):
    return flash.FlashOptions(cache_dir=tmp_path / "cache")


def firmware(seed: int = 1, app_kb: int = 900) -> list[flash.Image]:
    """Images shaped like a build: code-like (compressible, not trivially) bootloader, table and app."""
    rng = random.Random(seed)
    words = [rng.randbytes(4) for _ in range(512)]

    def blob(n: int) -> bytes:
        return b"".join(rng.choice(words) for _ in range(n // 4))

    return [flash.Image("bootloader", 0x0, b"\xe9" + blob(20 * 1024)[1:]),
            flash.Image("partition-table", 0x8000, blob(0xC00)),
            flash.Image("app", 0x20000, b"\xe9" + blob(app_kb * 1024)[1:])]


def on_device(emu, images) -> bool:
    return all(emu.chip.flash[i.offset:i.offset + len(i.data)] == i.data for i in images)


def test_full_flash_writes_every_byte_and_verifies(emulators, board, opts):
    emu = emulators()
    images = firmware()
    r = flash.flash_device(emu.url, board, images, opts)
    assert r.ok, r.error
    assert (r.chip, r.mac, r.mode, r.verified) == ("esp32s3", "7c:df:a1:e0:c0:de", "full", True)
    assert r.bytes_written == sum(len(i.data) for i in images)
    assert on_device(emu, images)
    assert 0 < r.bytes_sent == emu.chip.bytes_in
    assert "SPI_FLASH_MD5" in emu.chip.commands and "FLASH_DEFL_DATA" in emu.chip.commands


def test_unchanged_reflash_asks_the_rom_and_sends_almost_nothing(emulators, board, opts):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, opts)
    before = len(emu.chip.commands)
    again = flash.flash_device(emu.url, board, images, opts)
    assert again.ok and again.mode == "unchanged" and again.verified and on_device(emu, images)
    assert "MEM_BEGIN" not in emu.chip.commands[before:], "no stub upload when nothing changed"
    assert emu.chip.commands[before:].count("SPI_FLASH_MD5") == len(images)
    assert again.bytes_sent < 0.005 * sum(len(i.data) for i in images)


def test_unchanged_cache_but_device_differs_writes_only_that(emulators, board, opts):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, opts)
    emu.chip.flash[0x8000] ^= 0xFF  # the partition table changed behind rtflash's back
    r = flash.flash_device(emu.url, board, images, opts)
    assert r.ok and r.mode == "fast" and on_device(emu, images)


def test_one_sector_change_sends_about_one_sector(emulators, board, opts):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, opts)
    app = bytearray(images[2].data)
    app[0x5_0123] ^= 0xFF
    changed = images[:2] + [flash.Image("app", 0x20000, bytes(app))]
    data_before = emu.chip.data_bytes
    r = flash.flash_device(emu.url, board, changed, opts)
    assert r.ok and r.mode == "fast" and on_device(emu, changed)
    data = emu.chip.data_bytes - data_before
    assert 0 < data <= 2 * SECTOR, "only the changed sector goes over the wire (compressed)"
    assert r.bytes_sent - data < 16 * 1024, "the rest is sync, stub upload and MD5s"


def test_stale_cache_falls_back_to_a_full_verified_write(emulators, board, opts):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, opts)
    emu.chip.flash[0x30000:0x31000] = b"\x00" * SECTOR  # someone else wrote the device meanwhile
    r = flash.flash_device(emu.url, board, images, opts)
    assert r.ok and r.verified and on_device(emu, images)


def test_full_option_ignores_the_cache(emulators, board, tmp_path):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, flash.FlashOptions(cache_dir=tmp_path))
    r = flash.flash_device(emu.url, board, images, flash.FlashOptions(cache_dir=tmp_path, full=True))
    assert r.mode == "full" and r.bytes_sent > 100_000


def test_wrong_chip_is_refused_and_nothing_written(emulators, board, opts):
    emu = emulators(chip="esp32c3")
    r = flash.flash_device(emu.url, board, firmware(), opts)
    assert not r.ok
    assert r.error == (f"{emu.url}: found ESP32-C3 but board sonatino is esp32s3; "
                       "pick the right --board, or --force to write anyway")
    assert set(emu.chip.flash) == {0xFF}


def test_small_flash_is_refused_unless_forced(emulators, board, tmp_path):
    emu = emulators(flash_mb=4)
    refused = flash.flash_device(emu.url, board, firmware(), flash.FlashOptions(cache_dir=tmp_path))
    assert refused.error.endswith("flash is 4MB but board sonatino needs 8MB; pick the right --board, "
                                  "or --force to write anyway")
    forced = flash.flash_device(emu.url, board, firmware(), flash.FlashOptions(cache_dir=tmp_path, force=True))
    assert forced.ok and forced.warnings == ["flash is 4MB but board sonatino needs 8MB"]
    assert on_device(emu, firmware())


def test_link_dropped_mid_write_then_rerun_completes(emulators, board, opts):
    emu = emulators(drop_after_blocks=20)
    images = firmware()
    first = flash.flash_device(emu.url, board, images, opts)
    if first.ok:  # esptool reconnected by itself (it retries a lost link once)
        assert emu.chip.connections >= 2
    again = flash.flash_device(emu.url, board, images, opts)
    assert again.ok and again.verified and on_device(emu, images)


def test_several_devices_in_parallel_one_failure_does_not_stop_others(emulators, board, opts):
    good = [emulators(mac=bytes([0x7C, 0xDF, 0xA1, 0, 0, i])) for i in range(3)]
    bad = emulators(chip="esp32c6")
    images = firmware()
    results = flash.flash_many([good[0].url, bad.url, good[1].url, good[2].url], board, images, opts)
    assert [r.ok for r in results] == [True, False, True, True]
    assert [r.port for r in results] == [good[0].url, bad.url, good[1].url, good[2].url]
    assert len({r.mac for r in results if r.ok}) == 3
    assert all(on_device(e, images) for e in good)
    assert "ESP32-C6" in results[1].error


def test_same_port_twice_is_refused(board, opts):
    from rtflash.errors import PortError

    with pytest.raises(PortError, match="the same --port is given twice"):
        flash.flash_many(["socket://x:1", "socket://x:1"], board, firmware(), opts)


def test_credentials_are_written_but_never_cached(emulators, board, opts, tmp_path):
    from rtflash.artifacts import Artifacts

    emu = emulators()
    secret = b"canary-pw-in-nvs-0001"
    nvs = (0x9000, secret + b"\xff" * (0x6000 - len(secret)))
    images = flash.images_for(Artifacts("sonatino", "esp32s3", tmp_path, ()), nvs) + firmware()
    r = flash.flash_device(emu.url, board, images, opts)
    assert r.ok and emu.chip.flash[0x9000:0x9000 + len(secret)] == secret
    cached = list((tmp_path / "cache").rglob("*.bin"))
    assert sorted(p.name for p in cached) == ["0x00000000.bin", "0x00008000.bin", "0x00020000.bin"]
    assert all(secret not in p.read_bytes() for p in cached)


def test_progress_and_esptool_lines_are_routed_per_device(emulators, board, opts):
    emu = emulators()
    seen, lines = [], []
    flash.flash_device(emu.url, board, firmware(app_kb=200), opts,
                       on_progress=lambda port, what, done, total: seen.append((port, done, total)),
                       on_line=lambda port, line: lines.append(line))
    assert seen and all(p == emu.url for p, _, _ in seen)
    assert seen[-1][1] == seen[-1][2]
    assert "Hash of data verified." in lines


def test_pty_endpoint(emulators, board, opts):
    emu = emulators(pty=True)
    images = firmware(app_kb=300)
    r = flash.flash_device(emu.url, board, images, flash.FlashOptions(cache_dir=opts.cache_dir, before="no-reset",
                                                                        after="no-reset"))
    assert r.ok, r.error
    assert on_device(emu, images)


def test_erase_whole_and_region(emulators, board, opts):
    emu = emulators()
    images = firmware(app_kb=100)
    flash.flash_device(emu.url, board, images, opts)
    r = flash.erase_device(emu.url, board, opts, region=(0x20000, 0x2000))
    assert r.ok and set(emu.chip.flash[0x20000:0x22000]) == {0xFF} and emu.chip.flash[0x22000:0x22010] != b"\xff" * 16
    assert not list(opts.cache_dir.rglob("*.bin")), "an erase makes the cached images stale"
    assert flash.erase_device(emu.url, board, opts).ok and set(emu.chip.flash) == {0xFF}


def test_missing_port_is_one_line(board, opts):
    r = flash.flash_device("/dev/ttyNOPE0", board, firmware(app_kb=10), opts)
    assert r.error == "serial port /dev/ttyNOPE0 not found: is the board plugged in? `rtflash ports` lists the ports"


def test_no_bootloader_answering(board, opts):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"socket://127.0.0.1:{silent.getsockname()[1]}"
        r = flash.flash_device(url, board, firmware(app_kb=10),
                               flash.FlashOptions(cache_dir=opts.cache_dir, connect_attempts=1))
    assert not r.ok and r.error.startswith(f"{url}: no ESP32 bootloader answered")
    assert r.error.endswith("hold BOOT, tap RESET and try again, or check --port")


def test_cancel_stops_between_blocks_and_forgets_the_cache(emulators, board, opts):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, opts)
    assert list(opts.cache_dir.rglob("*.bin"))

    def stop(port, what, done, total):
        esptool_log.cancel()

    r = flash.flash_device(emu.url, board, firmware(seed=2), flash.FlashOptions(cache_dir=opts.cache_dir, full=True),
                           on_progress=stop)
    esptool_log.clear_cancel()
    assert not r.ok and r.error == "interrupted"
    assert not list(opts.cache_dir.rglob("*.bin"))


def test_chip_revision_checked_where_the_board_says_so(emulators, board, opts):
    import dataclasses

    strict = dataclasses.replace(board, min_chip_revision=3)
    emu = emulators(minor_revision=2)
    r = flash.flash_device(emu.url, strict, firmware(app_kb=10), opts)
    assert r.error.endswith("chip revision v0.2 is older than board sonatino needs (v0.3); pick the right "
                            "--board, or --force to write anyway")
    assert flash.flash_device(emu.url, dataclasses.replace(board, min_chip_revision=2), firmware(app_kb=10), opts).ok
