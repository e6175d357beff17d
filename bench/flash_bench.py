"""Flash figures against the emulated ESP32-S3 ROM loader (tests/esp_rom_emulator.py) and a real esptool.

Prints bytes sent and seconds for: a first full flash; an unchanged reflash (target <= 1 % of the image
bytes); a one-sector change (target <= 2 sectors of flash data, plus protocol overhead: the stub upload);
4 devices in parallel at a simulated 921600 baud against one device (target <= 1.3x).

    python bench/flash_bench.py [--app-kb 1200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtflash import flash  # noqa: E402
from rtflash.boards import load_catalog  # noqa: E402
from tests.esp_rom_emulator import SocketEmulator  # noqa: E402
from tests.test_flash import firmware  # noqa: E402  (code-like images, as the tests use)


def run(emu, images, cache: Path, **kw) -> flash.DeviceResult:
    board = load_catalog(None).get("sonatino")
    r = flash.flash_device(emu.url, board, images, flash.FlashOptions(cache_dir=cache, **kw))
    assert r.ok, r.error
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--app-kb", type=int, default=1200)
    args = ap.parse_args()
    images = firmware(seed=7, app_kb=args.app_kb)
    total = sum(len(i.data) for i in images)
    print(f"images: {total} bytes ({args.app_kb} KB app + bootloader + partition table)")
    with tempfile.TemporaryDirectory() as tmp, SocketEmulator() as emu:
        cache = Path(tmp)
        first = run(emu, images, cache)
        print(f"first full flash     : {first.bytes_sent:>9} bytes sent  {first.seconds:6.2f} s (host speed)")
        same = run(emu, images, cache)
        print(f"unchanged reflash    : {same.bytes_sent:>9} bytes sent  {same.seconds:6.2f} s  "
              f"= {100 * same.bytes_sent / total:.2f} % of image bytes (target <= 1 %)")
        app = bytearray(images[2].data)
        app[len(app) // 2] ^= 0xFF
        changed = images[:2] + [flash.Image("app", 0x20000, bytes(app))]
        data_before = emu.chip.data_bytes
        one = run(emu, changed, cache)
        data = emu.chip.data_bytes - data_before
        print(f"one-sector change    : {one.bytes_sent:>9} bytes sent  {one.seconds:6.2f} s  "
              f"= {data} bytes of flash data ({data / 4096:.2f} sectors; target <= 2) + "
              f"{one.bytes_sent - data} of protocol and stub upload")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        board = load_catalog(None).get("sonatino")
        opts = flash.FlashOptions(cache_dir=cache, baud=921600)
        with SocketEmulator(baud=115200) as emu:
            start = time.perf_counter()
            one_dev = flash.flash_device(emu.url, board, images, opts)
            single = time.perf_counter() - start
        emus = [SocketEmulator(baud=115200, mac=bytes([2, 0, 0, 0, 0, i])).start() for i in range(4)]
        try:
            start = time.perf_counter()
            results = flash.flash_many([e.url for e in emus], board, images, opts)
            parallel = time.perf_counter() - start
        finally:
            for e in emus:
                e.close()
        assert one_dev.ok and all(r.ok for r in results), [r.error for r in results]
        print(f"1 device  @921600    : {single:6.2f} s ({one_dev.bytes_sent} bytes sent)")
        print(f"4 devices @921600    : {parallel:6.2f} s = {parallel / single:.2f}x one device (target <= 1.3x)")


if __name__ == "__main__":
    main()
