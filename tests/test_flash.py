"""rtflash.flash against a real esptool talking to the emulated ROM bootloader."""

from __future__ import annotations

import pytest

from rtflash import esptool_log, flash
from rtflash.boards import load_catalog
from testkit.esp_rom_emulator import build_images

SECTOR = 0x1000


@pytest.fixture
def board():
    return load_catalog(None).get("sonatino")


@pytest.fixture
def opts(tmp_path):
    return flash.FlashOptions(cache_dir=tmp_path / "cache")


def firmware(seed: int = 1, app_kb: int = 900) -> list[flash.Image]:
    """Images shaped like a build (testkit/esp_rom_emulator.py makes them for the bench too)."""
    return [flash.Image(name, offset, data) for name, offset, data in build_images(seed, app_kb)]


def on_device(emu, images) -> bool:
    return all(emu.chip.flash[i.offset:i.offset + len(i.data)] == i.data for i in images)


def total(images) -> int:
    return sum(len(i.data) for i in images)


def since(emu, mark: int) -> list[str]:
    return emu.chip.commands[mark:]


def esp32s3_bootloader(min_rev_full: int = 0) -> bytes:
    """A real ESP32-S3 image (esptool parses it: chip id 9, the minimum chip revision given)."""
    import tempfile
    from pathlib import Path

    from esptool.bin_image import ELFSection, ESP32S3FirmwareImage

    image = ESP32S3FirmwareImage()
    image.entrypoint = 0x403C8000
    image.min_rev_full, image.max_rev_full = min_rev_full, 65535
    image.segments = [ELFSection(b".iram", 0x403C8000, b"\x11" * 4096, 0)]
    with tempfile.TemporaryDirectory() as tmp:
        image.save(str(Path(tmp) / "bl.bin"))
        return (Path(tmp) / "bl.bin").read_bytes()


def test_full_flash_writes_every_byte_and_verifies(emulators, board, opts):
    emu = emulators()
    images = firmware()
    r = flash.flash_device(emu.url, board, images, opts)
    assert r.ok, r.error
    assert (r.chip, r.mac, r.mode, r.verified) == ("esp32s3", "7c:df:a1:e0:c0:de", "full", True)
    assert (r.bytes_written, r.bytes_skipped) == (total(images), 0)
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
    assert (again.bytes_written, again.bytes_skipped) == (0, total(images))
    assert "MEM_BEGIN" not in emu.chip.commands[before:], "no stub upload when nothing changed"
    assert emu.chip.commands[before:].index("CHANGE_BAUDRATE") < emu.chip.commands[before:].index("SPI_ATTACH"), \
        "the ROM switches to the fast baud before esptool's flash attach sequence"
    assert emu.chip.commands[before:].count("SPI_FLASH_MD5") == len(images)
    assert again.bytes_sent < 0.005 * sum(len(i.data) for i in images)


def test_unchanged_cache_but_device_differs_writes_only_that(emulators, board, opts):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, opts)
    emu.chip.flash[0x8000] ^= 0xFF  # the partition table changed behind rtflash's back
    r = flash.flash_device(emu.url, board, images, opts)
    assert r.ok and r.mode == "fast" and on_device(emu, images)
    assert (r.bytes_written, r.bytes_skipped) == (0xC00, total(images) - 0xC00)


def test_one_sector_change_sends_about_one_sector(emulators, board, opts):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, opts)
    app = bytearray(images[2].data)
    app[0x5_0123] ^= 0xFF
    changed = images[:2] + [flash.Image("app", 0x20000, bytes(app))]
    data_before, mark = emu.chip.data_bytes, len(emu.chip.commands)
    r = flash.flash_device(emu.url, board, changed, opts)
    assert r.ok and r.mode == "fast" and on_device(emu, changed)
    assert (r.bytes_written, r.bytes_skipped) == (SECTOR, total(images) - SECTOR)
    data = emu.chip.data_bytes - data_before
    assert 0 < data <= SECTOR, "only the changed sector goes over the wire (compressed)"
    assert "MEM_BEGIN" not in since(emu, mark), "the ROM writes one sector itself: no stub upload"
    assert since(emu, mark).count("SPI_FLASH_MD5") <= 6, "3 questions for the app, 1 each for the rest, 1 verify"
    assert r.bytes_sent - data < 4096, "the rest is sync, MD5 questions, one baud switch (a stub is ~12 KB)"
    assert str(r).startswith(f"esp32s3 7c:df:a1:e0:c0:de: wrote 4096 bytes, skipped {total(images) - SECTOR} "
                             "already on the device, sent ")


def test_device_asked_without_a_hint_finds_the_one_sector(emulators, board, opts, tmp_path):
    """No cache (another machine, a wiped cache): the device's own MD5s still find the one sector."""
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, opts)
    emu.chip.flash[0x20000 + 0x7_1234] ^= 0x01
    r = flash.flash_device(emu.url, board, images, flash.FlashOptions(cache_dir=tmp_path / "empty"))
    assert r.ok and on_device(emu, images)
    assert (r.bytes_written, r.bytes_skipped) == (SECTOR, total(images) - SECTOR)


def test_big_change_uploads_the_stub_over_the_fast_link(emulators, board, opts):
    emu = emulators()
    mark = len(emu.chip.commands)
    r = flash.flash_device(emu.url, board, firmware(), opts)
    assert r.ok and r.mode == "full"
    done = since(emu, mark)
    assert "CHANGE_BAUDRATE" in done and "MEM_BEGIN" in done
    assert done.index("CHANGE_BAUDRATE") < done.index("MEM_BEGIN"), "the ROM switches baud before the stub goes up"


def test_stale_cache_falls_back_to_a_full_verified_write(emulators, board, opts):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, opts)
    emu.chip.flash[0x30000:0x31000] = b"\x00" * SECTOR  # someone else wrote the device meanwhile
    r = flash.flash_device(emu.url, board, images, opts)
    assert r.ok and r.verified and on_device(emu, images) and r.bytes_written == SECTOR


def test_full_option_ignores_the_cache(emulators, board, tmp_path):
    emu = emulators()
    images = firmware()
    flash.flash_device(emu.url, board, images, flash.FlashOptions(cache_dir=tmp_path))
    r = flash.flash_device(emu.url, board, images, flash.FlashOptions(cache_dir=tmp_path, full=True))
    assert r.mode == "full" and r.bytes_sent > 100_000 and r.bytes_written == total(images)


def test_wrong_chip_is_refused_and_nothing_written(emulators, board, opts):
    emu = emulators(chip="esp32c3")
    r = flash.flash_device(emu.url, board, firmware(), opts)
    assert not r.ok
    assert r.error == (f"{emu.url}: found ESP32-C3 but board sonatino is esp32s3, and an esp32s3 image cannot "
                       "run on it: pick a board of that chip with --board")
    forced = flash.flash_device(emu.url, board, firmware(), flash.FlashOptions(cache_dir=opts.cache_dir, force=True))
    assert forced.error == r.error, "--force is not offered for another chip, and does not override it"
    assert set(emu.chip.flash) == {0xFF}


def test_force_passes_esptools_own_force_through(emulators, board, opts):
    """The bootloader needs chip v3.0, the chip is v0.2: esptool refuses (no re-run advice), --force writes."""
    emu = emulators(minor_revision=2)
    images = [flash.Image("bootloader", 0x0, esp32s3_bootloader(min_rev_full=300))] + firmware()[1:]
    refused = flash.flash_device(emu.url, board, images, opts)
    assert refused.error == (f"{emu.url}: Input requires chip revision v3.0 or higher (this chip is revision v0.2)"
                             "; --force writes anyway")
    forced = flash.flash_device(emu.url, board, images, flash.FlashOptions(cache_dir=opts.cache_dir, force=True))
    assert forced.ok, forced.error
    assert on_device(emu, images)


def test_esptool_refusals_name_the_fix_not_a_rerun():
    from esptool.util import FatalError

    image = flash._describe("P", FatalError("Input does not contain an ESP32-C3 image. Use --force to flash anyway."))
    assert image == "P: Input does not contain an ESP32-C3 image; --force writes anyway"
    link = flash._describe("P", FatalError("Timed out waiting for packet header"))
    assert link == "P: Timed out waiting for packet header; run again (a re-run writes only what is still " \
                   "missing, and verifies)"


def test_small_flash_is_refused_unless_forced(emulators, board, tmp_path):
    emu = emulators(flash_mb=4)
    refused = flash.flash_device(emu.url, board, firmware(), flash.FlashOptions(cache_dir=tmp_path))
    assert refused.error.endswith("flash is 4MB but board sonatino needs 8MB; pick the right --board, "
                                  "or --force to write anyway")
    forced = flash.flash_device(emu.url, board, firmware(), flash.FlashOptions(cache_dir=tmp_path, force=True))
    assert forced.ok and forced.warnings == ["flash is 4MB but board sonatino needs 8MB (--force)"]
    assert on_device(emu, firmware())


def test_flash_size_is_asked_of_the_chip_and_a_stale_record_replaced(emulators, board, tmp_path):
    """The cache once held this MAC's 8 MB flash id: a 4 MB chip with that MAC is still refused (the id
    is read from the device, never taken from the cache), with one warning, and the record (its image
    hints too) replaced by what the chip said."""
    small = emulators(flash_mb=4)
    record = tmp_path / "7cdfa1e0c0de"
    record.mkdir()
    (record / "flash-id").write_text("1740c8\n")  # 8 MB
    (record / "0x00020000.bin").write_bytes(b"hint for the other flash")
    refused = flash.flash_device(small.url, board, firmware(), flash.FlashOptions(cache_dir=tmp_path))
    assert not refused.ok and "flash is 4MB but board sonatino needs 8MB" in refused.error
    assert refused.warnings == [("flash id 1640c8 differs from 1740c8 cached for this MAC (another flash chip or "
                                 "device): cached record replaced")]
    assert (record / "flash-id").read_text() == "1640c8\n" and not (record / "0x00020000.bin").exists()
    assert small.chip.flash == bytearray(b"\xff" * (4 << 20)), "nothing written"
    again = flash.flash_device(small.url, board, firmware(), flash.FlashOptions(cache_dir=tmp_path))
    assert again.warnings == [] and "needs 8MB" in again.error, "the record now agrees: no second warning"
    big = emulators(flash_mb=8)  # same MAC, 8 MB again: written, record replaced once more
    ok = flash.flash_device(big.url, board, firmware(), flash.FlashOptions(cache_dir=tmp_path))
    assert ok.ok and len(ok.warnings) == 1 and (record / "flash-id").read_text() == "1740c8\n"


def test_link_dropped_mid_write_then_rerun_completes(emulators, board, opts):
    emu = emulators(drop_after_blocks=20)
    images = firmware()
    first = flash.flash_device(emu.url, board, images, opts)
    if first.ok:  # esptool reconnected by itself (it retries a lost link once)
        assert emu.chip.connections >= 2
    again = flash.flash_device(emu.url, board, images, opts)
    assert again.ok and again.verified and on_device(emu, images)
    assert again.bytes_skipped > 0 or first.ok, "the re-run keeps what the cut write got onto the device"


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


def test_erase_whole_and_region_then_flash_writes_only_the_erased(emulators, board, opts):
    emu = emulators()
    images = firmware(app_kb=100)
    flash.flash_device(emu.url, board, images, opts)
    r = flash.erase_device(emu.url, board, opts, region=(0x21000, 0x2000))
    assert r.ok and set(emu.chip.flash[0x21000:0x23000]) == {0xFF} and emu.chip.flash[0x23000:0x23010] != b"\xff" * 16
    again = flash.flash_device(emu.url, board, images, opts)
    assert again.ok and on_device(emu, images)
    assert (again.bytes_written, again.bytes_skipped) == (0x2000, total(images) - 0x2000)
    assert flash.erase_device(emu.url, board, opts).ok and set(emu.chip.flash) == {0xFF}
    whole = flash.flash_device(emu.url, board, images, opts)
    assert whole.ok and on_device(emu, images) and whole.bytes_written == total(images)


def test_erase_region_past_the_end_of_the_flash_is_refused(emulators, board, opts):
    emu = emulators()
    emu.chip.flash[0x7FF000:] = b"\0" * SECTOR
    r = flash.erase_device(emu.url, board, opts, region=(0x7FF000, 0x2000))
    assert r.error == (f"{emu.url}: --region 0x7ff000 0x2000 ends at 0x801000, past the end of the device's 8MB "
                       "flash (0x800000)")
    assert set(emu.chip.flash[0x7FF000:]) == {0}, "nothing erased"


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


@pytest.mark.parametrize("hint", [True, False], ids=["cache-kept", "no-cache"])
def test_cancelled_write_then_rerun_writes_only_the_rest(emulators, board, opts, tmp_path, hint):
    """Ctrl-C mid-write: the re-run asks the device and writes only the sectors still missing."""
    emu = emulators()
    old, new = firmware(), firmware(seed=2)
    flash.flash_device(emu.url, board, old, opts)
    start = emu.chip.blocks

    def stop(port, what, done, total_):
        if emu.chip.blocks - start >= 3:
            esptool_log.cancel()

    r = flash.flash_device(emu.url, board, new, opts, on_progress=stop)
    esptool_log.clear_cancel()
    assert not r.ok and r.error == "interrupted" and not on_device(emu, new)
    again = flash.flash_device(emu.url, board, new, opts if hint else flash.FlashOptions(cache_dir=tmp_path / "none"))
    assert again.ok and on_device(emu, new) and again.mode == "fast"
    assert again.bytes_skipped >= 2 * 0x4000, "what the cut write got onto the device is not written again"
    assert again.bytes_written + again.bytes_skipped == total(new)


def test_chip_revision_checked_where_the_board_says_so(emulators, board, opts):
    import dataclasses

    strict = dataclasses.replace(board, min_chip_revision=3)
    emu = emulators(minor_revision=2)
    r = flash.flash_device(emu.url, strict, firmware(app_kb=10), opts)
    assert r.error.endswith("chip revision v0.2 is older than board sonatino needs (v0.3); pick the right "
                            "--board, or --force to write anyway")
    assert flash.flash_device(emu.url, dataclasses.replace(board, min_chip_revision=2), firmware(app_kb=10), opts).ok
