"""Flash figures: rtflash and a real esptool, side by side, against the same emulated ESP32-S3 ROM loader.

The emulator (testkit/esp_rom_emulator.py) paces every byte as a UART at a simulated baud (115200 at
reset, whatever CHANGE_BAUDRATE sets after), so the stub upload, the baud switch and each round trip
cost what they cost on a wire. esptool runs in this process (`esptool.main`, no interpreter start-up),
both at `-b 921600`. Printed, in one run:

- a first full flash (rtflash, esptool);
- an unchanged reflash: rtflash vs `esptool write-flash --skip-flashed` (target <= 0.5x);
- a one-sector change: rtflash vs `esptool write-flash --diff-with OLD` (target <= 0.5x);
- recovery: after Ctrl-C mid-write and after `erase --region`, what the next flash writes and skips;
- 4 devices in parallel against one (target <= 1.3x).

Run from the repo root with the project's venv: `.venv/bin/python bench/flash_bench.py [--app-kb 1200]`
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from venv_check import require_rtflash

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from testkit.esp_rom_emulator import SocketEmulator, build_images  # noqa: E402

require_rtflash()

from rtflash import esptool_log, flash
from rtflash.boards import load_catalog

BAUD = 921600
WIRE = 115200  # the simulated UART's speed after each reset
REPS = 3


def images_of(triples) -> list[flash.Image]:
    return [flash.Image(name, offset, data) for name, offset, data in triples]


def one_sector_changed(images: list[flash.Image]) -> list[flash.Image]:
    app = bytearray(images[-1].data)
    app[len(app) // 2] ^= 0xFF
    return images[:-1] + [flash.Image(images[-1].name, images[-1].offset, bytes(app))]


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.board = load_catalog(None).get("sonatino")
        self.options = flash.FlashOptions(cache_dir=tmp / "cache", baud=BAUD)

    def rtflash(self, emu, images, **kw) -> flash.DeviceResult:
        r = flash.flash_device(emu.url, self.board, images, self.options, **kw)
        if not r.ok:
            raise SystemExit(f"rtflash failed: {r.error}")
        return r

    def files(self, tag: str, images) -> list[str]:
        paths = []
        for image in images:
            path = self.tmp / f"{tag}-{image.name}.bin"
            path.write_bytes(image.data)
            paths.append(str(path))
        return paths

    def esptool(self, emu, images, *extra: str, old=None) -> float:
        """Time `esptool write-flash` (in process) with these images; `old` for --diff-with."""
        import esptool

        argv = ["--chip", "esp32s3", "-p", emu.url, "-b", str(BAUD), "write-flash", *extra]
        for image, path in zip(images, self.files("new", images)):
            argv += [hex(image.offset), path]
        if old is not None:  # last: the option takes every name after it
            argv += ["--diff-with", *self.files("old", old)]
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            esptool.main(argv)
        return time.perf_counter() - start


def line(what: str, ours: float, theirs: float, name: str, target: float = 0.5) -> str:
    ratio = ours / theirs
    flag = "ok" if ratio <= target else f"OVER {target}x"
    return (f"{what:<20}: rtflash {ours:5.2f} s  esptool {name} {theirs:5.2f} s  = {ratio:.2f}x "
            f"(target <= {target}x) {flag}")


def compare(bench: Bench, emu, images: list[flash.Image], total: int) -> None:
    """Full, unchanged and one-sector figures, rtflash and esptool alternating on one emulator."""
    first = bench.rtflash(emu, images)
    esp_full = bench.esptool(emu, images)
    print(f"first full flash    : rtflash {first.seconds:5.2f} s  esptool {esp_full:5.2f} s  "
          f"({first.bytes_sent} bytes sent by rtflash for {total} image bytes)")
    bench.rtflash(emu, images)  # the cache now matches the device
    same = [bench.rtflash(emu, images) for _ in range(REPS)]
    esp_same = [bench.esptool(emu, images, "--skip-flashed") for _ in range(REPS)]
    print(line("unchanged reflash", statistics.median(r.seconds for r in same), statistics.median(esp_same),
               "--skip-flashed") + f"; rtflash sent {same[-1].bytes_sent} bytes")
    changed = one_sector_changed(images)
    ours, theirs, data = [], [], []
    for _ in range(REPS):
        before = emu.chip.data_bytes
        ours.append(bench.rtflash(emu, changed))
        data.append(emu.chip.data_bytes - before)
        ours.append(bench.rtflash(emu, images))
        theirs.append(bench.esptool(emu, changed, old=images))
        theirs.append(bench.esptool(emu, images, old=changed))
    r = ours[0]
    print(line("one-sector change", statistics.median(x.seconds for x in ours), statistics.median(theirs),
               "--diff-with") + f"; rtflash: {r}; {data[0]} bytes of flash data")


def recovery(bench: Bench, emu, images: list[flash.Image], total: int) -> None:
    """What the flash after a Ctrl-C, and after an erased region, writes."""
    new = images_of(build_images(seed=8, app_kb=len(images[-1].data) // 1024))

    def stop_midway(port, what, done, total_):
        if emu.chip.blocks - blocks_before >= 3:
            esptool_log.cancel()

    blocks_before = emu.chip.blocks
    cut = flash.flash_device(emu.url, bench.board, new, bench.options, on_progress=stop_midway)
    esptool_log.clear_cancel()
    assert not cut.ok and cut.error == "interrupted", cut.error
    before = emu.chip.data_bytes
    again = bench.rtflash(emu, new)
    print(f"after Ctrl-C        : {again}; {emu.chip.data_bytes - before} bytes of flash data")
    erased = flash.erase_device(emu.url, bench.board, bench.options, region=(0x40000, 0x10000))
    assert erased.ok, erased.error
    before = emu.chip.data_bytes
    again = bench.rtflash(emu, new)
    print(f"after erase 64 KB   : {again}; {emu.chip.data_bytes - before} bytes of flash data")


def parallel(bench: Bench, images: list[flash.Image]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        options = flash.FlashOptions(cache_dir=Path(tmp), baud=BAUD)
        with SocketEmulator(baud=WIRE) as emu:
            one = flash.flash_device(emu.url, bench.board, images, options)
        emus = [SocketEmulator(baud=WIRE, mac=bytes([2, 0, 0, 0, 0, i])).start() for i in range(4)]
        try:
            start = time.perf_counter()
            results = flash.flash_many([e.url for e in emus], bench.board, images, options)
            both = time.perf_counter() - start
        finally:
            for e in emus:
                e.close()
    assert one.ok and all(r.ok for r in results), [r.error for r in results]
    print(f"1 device  @{BAUD}   : {one.seconds:5.2f} s ({one.bytes_sent} bytes sent)")
    print(f"4 devices @{BAUD}   : {both:5.2f} s = {both / one.seconds:.2f}x one device (target <= 1.3x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app-kb", type=int, default=1200)
    args = ap.parse_args()
    images = images_of(build_images(seed=7, app_kb=args.app_kb))
    total = sum(len(i.data) for i in images)
    print(f"images: {total} bytes ({args.app_kb} KB app + bootloader + partition table); "
          f"simulated wire {WIRE} baud until a CHANGE_BAUDRATE, writes at {BAUD}")
    with tempfile.TemporaryDirectory() as tmp, SocketEmulator(baud=WIRE) as emu:
        bench = Bench(Path(tmp))
        compare(bench, emu, images, total)
        recovery(bench, emu, images, total)
        parallel(bench, images)


if __name__ == "__main__":
    main()
