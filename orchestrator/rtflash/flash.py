"""Write a build to devices through esptool's Python API (`esptool.cmds`), never its console text.

One device: connect (port opened by `ports.open_serial`), check the chip and flash size against the
board, run the stub, switch baud, then `write_flash` with esptool's own MD5 verification. Fast
reflash: the image last written at each offset is kept per device (keyed by MAC) and handed to
esptool as `diff_with`, so only changed 4 KB sectors go over the wire; esptool falls back to a full
write by itself when the device's flash does not match. Credentials (nvs) are never cached.

Several devices: one thread each; a failure on one never stops the others. esptool logs through a
process-wide logger, so ours routes each thread's lines and progress to that thread's device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rtflash import esptool_log, ports
from rtflash.errors import FlashError, PortError, RtflashError
from rtflash.files import write_atomic

OnProgress = Callable[[str, str, int, int], None]  # (port, what, done, total)
OnLine = Callable[[str, str], None]  # (port, line)


@dataclass(frozen=True)
class Image:
    """Bytes to write at `offset`; `cache` False for secrets (the nvs partition)."""

    name: str
    offset: int
    data: bytes
    cache: bool = True


@dataclass(frozen=True)
class FlashOptions:
    baud: int = 921600
    initial_baud: int = 115200
    before: str = "default-reset"
    after: str = "hard-reset"
    full: bool = False
    erase: bool = False
    force: bool = False
    cache_dir: Path | None = None
    connect_attempts: int = 7


@dataclass
class DeviceResult:
    """What happened on one device; `--json` prints exactly this."""

    port: str
    ok: bool = False
    chip: str = ""
    mac: str = ""
    bytes_written: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    verified: bool = False
    mode: str = ""
    error: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if not self.ok:
            return f"failed: {self.error}"
        if self.mode == "unchanged":
            return (f"{self.chip} {self.mac}: already on the device (MD5 verified), sent {self.bytes_sent} "
                    f"bytes in {self.seconds:.1f} s")
        return (f"{self.chip} {self.mac}: wrote {self.bytes_written} bytes, sent {self.bytes_sent} "
                f"({self.mode}) in {self.seconds:.1f} s, verified")


def default_cache_dir() -> Path:
    """Per-device image cache: $RTFLASH_CACHE_DIR, else $XDG_CACHE_HOME/rtflash/devices."""
    from rtflash.resources import user_path

    return user_path("cache", "devices", "RTFLASH_CACHE_DIR")


def chip_key(name: str) -> str:
    """esptool's CHIP_NAME ("ESP32-S3") in the boards' spelling ("esp32s3")."""
    return name.lower().replace("-", "")


def images_for(artifacts, nvs: tuple[int, bytes] | None = None) -> list[Image]:
    """The build's regions (read now, so a rebuild mid-flash cannot mix images) plus nvs."""
    images = []
    for region in artifacts.regions:
        try:
            images.append(Image(region.name, region.offset, Path(region.path).read_bytes()))
        except OSError:
            raise FlashError(f"{region.path} is missing: build first (rtflash build --board "
                             f"{artifacts.board})") from None
    if nvs is not None:
        images.append(Image("nvs", nvs[0], nvs[1], cache=False))
    return sorted(images, key=lambda i: i.offset)


class _Cache:
    """The image last written at each offset of one device, for esptool's diff_with."""

    def __init__(self, root: Path, mac: str) -> None:
        self.dir = root / mac.replace(":", "")

    def path(self, offset: int) -> Path:
        return self.dir / f"{offset:#010x}.bin"

    def get(self, image: Image) -> bytes | None:
        try:
            return self.path(image.offset).read_bytes() if image.cache else None
        except OSError:
            return None

    def put(self, image: Image) -> None:
        if image.cache:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path(image.offset), image.data)

    def forget(self) -> None:
        """The device's flash is unknown now (a failed or interrupted write)."""
        for p in self.dir.glob("*.bin") if self.dir.is_dir() else ():
            p.unlink(missing_ok=True)


# -- one device -------------------------------------------------------------------------

def _connect(port: str, options: FlashOptions, result: DeviceResult):
    """Open the port and sync with the ROM loader; returns esptool's loader for the chip found."""
    from esptool.cmds import detect_chip
    from esptool.util import FatalError

    ser = ports.open_serial(port, options.initial_baud, timeout=3)
    _count_sent(ser, result)
    try:
        return detect_chip(ser, options.initial_baud, options.before, connect_attempts=options.connect_attempts)
    except FatalError as exc:
        ser.close()
        raise FlashError(f"{port}: no ESP32 bootloader answered ({_first_line(exc)}): hold BOOT, "
                         "tap RESET and try again, or check --port") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_device(esp, board, result: DeviceResult, force: bool) -> None:
    """The chip must be the board's, the flash at least the board's; --force only warns."""
    from esptool.cmds import detect_flash_size
    from esptool.util import flash_size_bytes

    problems = []
    if result.chip != board.chip:
        problems.append(f"found {esp.CHIP_NAME} but board {board.name} is {board.chip}")
    minimum = board.min_chip_revision
    if minimum and esp.get_chip_revision() < minimum:
        rev = esp.get_chip_revision()
        problems.append(f"chip revision v{rev // 100}.{rev % 100} is older than board {board.name} needs "
                        f"(v{minimum // 100}.{minimum % 100})")
    if not problems and board.flash_bytes:
        found = detect_flash_size(esp)
        if found and flash_size_bytes(found) < board.flash_bytes:
            problems.append(f"flash is {found} but board {board.name} needs {board.flash_size}")
    for p in problems:
        if not force:
            raise FlashError(f"{result.port}: {p}; pick the right --board, or --force to write anyway")
        result.warnings.append(p)


def _count_sent(port, result: DeviceResult) -> None:
    """Count bytes as they go over the wire (esptool's own counters are per image)."""
    write = port.write

    def counting(data):
        result.bytes_sent += len(data)
        return write(data)

    port.write = counting


def _unchanged(esp, images: Sequence[Image], cache: _Cache) -> bool:
    """Every image already on the device? Asked of the ROM (SPI_FLASH_MD5), before any stub upload.

    Only tried when the cache says so, since a wasted MD5 costs time; the MD5 is what decides.
    """
    import hashlib

    from esptool.cmds import attach_flash

    if not images or any(cache.get(i) != i.data for i in images if i.cache):
        return False
    attach_flash(esp)
    for image in images:
        data = image.data + b"\xff" * (-len(image.data) % 4)  # write_flash pads to 4 bytes the same way
        if esp.flash_md5sum(image.offset, len(data)) != hashlib.md5(data).hexdigest():
            return False
    return True


def _write(esp, images: Sequence[Image], cache: _Cache, options: FlashOptions, result: DeviceResult):
    """Write what differs (all of it with --full/--erase) and verify; returns the loader now in charge."""
    from esptool.cmds import erase_flash, write_flash

    if not (options.full or options.erase) and _unchanged(esp, images, cache):
        result.mode, result.verified = "unchanged", True
        return esp
    esp = _prepare(esp, options)
    if options.erase:
        erase_flash(esp)
    old = [None if options.full or options.erase else cache.get(i) for i in images]
    result.mode = "fast" if any(old) else "full"
    cache.forget()  # until verified, the device's flash is unknown
    write_flash(esp, [(i.offset, i.data) for i in images], diff_with=old)
    result.bytes_written = sum(len(i.data) for i in images)
    result.verified = True
    for image in images:
        cache.put(image)
    return esp


def _on_device(port: str, board, options: FlashOptions, result: DeviceResult, work: Callable,
               progress=None, on_line: OnLine | None = None) -> DeviceResult:
    """Connect and check one device, then `work(esp, cache)` (returns the loader to reset); errors land in
    the result."""
    start = time.perf_counter()
    esp = None
    try:
        with esptool_log.sinks(progress, _line_sink(port, on_line)):
            esp = _connect(port, options, result)
            result.chip = chip_key(esp.CHIP_NAME)
            result.mac = ":".join(f"{b:02x}" for b in esp.read_mac())
            _check_device(esp, board, result, options.force)
            esp = work(esp, _Cache(options.cache_dir or default_cache_dir(), result.mac))
            _reset(esp, options.after)
        result.ok = True
    except (RtflashError, OSError) as exc:
        result.error = str(exc) if isinstance(exc, RtflashError) else f"{port}: {exc}"
    except Exception as exc:  # esptool's FatalError and pyserial's SerialException
        result.error = f"{port}: {_first_line(exc)}; run again (a re-run writes what is missing and verifies)"
    finally:
        result.seconds = round(time.perf_counter() - start, 3)
        if esp is not None:
            _close(esp)
    return result


def flash_device(port: str, board, images: Sequence[Image], options: FlashOptions = FlashOptions(),
                 on_progress: OnProgress | None = None, on_line: OnLine | None = None) -> DeviceResult:
    """Connect, check, write and verify one device; errors are returned in the result, not raised."""
    result = DeviceResult(port=port)
    progress = (lambda what, done, total: on_progress(port, what, done, total)) if on_progress else None
    return _on_device(port, board, options, result,
                      lambda esp, cache: _write(esp, images, cache, options, result), progress, on_line)


def _line_sink(port: str, on_line: OnLine | None):
    return (lambda line: on_line(port, line)) if on_line else None


def _prepare(esp, options: FlashOptions):
    """Stub, faster baud, flash attached: what every write needs first."""
    from esptool.cmds import attach_flash, run_stub

    esp = run_stub(esp)
    if options.baud and options.baud != options.initial_baud:
        esp.change_baud(options.baud)
    attach_flash(esp)
    return esp


def _reset(esp, after: str) -> None:
    from esptool.cmds import reset_chip

    reset_chip(esp, after)


def _close(esp) -> None:
    try:
        esp._port.close()
    except Exception:  # closing a vanished port must not hide the real error
        pass


def flash_many(port_list: Sequence[str], board, images: Sequence[Image], options: FlashOptions = FlashOptions(),
               on_progress: OnProgress | None = None, on_line: OnLine | None = None) -> list[DeviceResult]:
    """Flash every port at once, one thread each; results in the order of `port_list`."""
    if len(set(port_list)) != len(port_list):
        raise PortError("the same --port is given twice")
    esptool_log.clear_cancel()
    if len(port_list) == 1:
        return [flash_device(port_list[0], board, images, options, on_progress, on_line)]
    with ThreadPoolExecutor(max_workers=len(port_list)) as pool:
        futures = [pool.submit(flash_device, p, board, images, options, on_progress, on_line) for p in port_list]
        try:
            return [f.result() for f in futures]
        except KeyboardInterrupt:
            esptool_log.cancel()  # each worker stops at its next block
            for f in futures:
                f.result()
            raise


def erase_device(port: str, board, options: FlashOptions = FlashOptions(),
                 region: tuple[int, int] | None = None, on_line: OnLine | None = None) -> DeviceResult:
    """Erase the whole flash (or one region); the device's image cache is forgotten."""
    from esptool.cmds import erase_flash, erase_region

    def erase(esp, cache: _Cache):
        esp = _prepare(esp, options)
        cache.forget()
        erase_region(esp, *region) if region else erase_flash(esp)
        return esp

    return _on_device(port, board, options, DeviceResult(port=port, mode="erase"), erase, None, on_line)
