"""Write a build to devices through esptool's Python API (`esptool.cmds`), never its console text.

One device: connect (port opened by `ports.open_serial`), check the chip and flash size against the
board, then ask the device which 4 KB sectors differ (`sectors.plan`, SPI_FLASH_MD5 in the ROM, before
any stub upload) and write only those with `write_flash`, which verifies each written span by MD5;
the skipped ones were verified by the same question. So a reflash, a re-run after Ctrl-C or after an
erased region, writes what is missing and nothing else. The image last written at each offset is
kept per device (keyed by MAC) as a hint of what to ask about, never as the truth; credentials
(nvs) are never cached. Chip and flash size are always read from the device at connect (the fit
check never uses the cache); a flash id that differs from the record replaces it, with one warning.
The images reaching this module were checked already (`rtflash.images`, in the CLI's load_images). Up to `ROM_WRITE_LIMIT` bytes are written by the ROM itself (no stub
upload); more goes through the stub. The baud is switched right after the ROM answers (the ESP32
ROMs, unlike the ESP8266's, take CHANGE_BAUDRATE; the stub keeps the UART's rate), so esptool's flash
attach sequence, the questions and the stub upload itself all go over the fast link.

Several devices: one thread each; a failure on one never stops the others. esptool logs through a
process-wide logger, so ours routes each thread's lines and progress to that thread's device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rtflash import esptool_log, ports, sectors
from rtflash.errors import FlashError, PortError, RtflashError
from rtflash.files import write_atomic

ROM_WRITE_LIMIT = 64 * 1024  # bytes to write at most through the ROM; more is worth the stub upload
NO_RERUN = ("force", "will not fit", "encrypt", "secure boot")  # esptool refusals a re-run cannot fix

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
    bytes_skipped: int = 0
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
        if self.mode == "erase":
            return f"{self.chip} {self.mac}: erased in {self.seconds:.1f} s"
        if self.mode == "unchanged":
            return (f"{self.chip} {self.mac}: already on the device ({self.bytes_skipped} bytes, MD5 verified), "
                    f"sent {self.bytes_sent} bytes in {self.seconds:.1f} s")
        skipped = f", skipped {self.bytes_skipped} already on the device" if self.bytes_skipped else ""
        return (f"{self.chip} {self.mac}: wrote {self.bytes_written} bytes{skipped}, sent {self.bytes_sent} "
                f"in {self.seconds:.1f} s, verified")


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
    """What rtflash last wrote at each offset of one device (a hint for `sectors.plan`), and the JEDEC id
    of its flash chip as last read. The id is never trusted: it is read from the device at every connect
    (a board's flash can be swapped, an emulator or a module reuse a MAC), and a different one replaces
    the record, hints and all."""

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

    def flash_id(self) -> int | None:
        try:
            return int((self.dir / "flash-id").read_text(), 16)
        except (OSError, ValueError):
            return None

    def record_flash_id(self, flash_id: int) -> str | None:
        """Store the id the device reported; when the record said otherwise, drop the record (its image
        hints were for that other flash) and return the one-line warning."""
        cached = self.flash_id()
        if cached == flash_id:
            return None
        warning = None
        if cached is not None:
            warning = (f"flash id {flash_id:06x} differs from {cached:06x} cached for this MAC (another flash "
                       f"chip or device): cached record replaced")
            for old in self.dir.glob("0x*.bin"):
                old.unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / "flash-id", f"{flash_id:06x}\n".encode())
        return warning


# -- one device -------------------------------------------------------------------------

def _connect(port: str, options: FlashOptions, result: DeviceResult):
    """Open the port and sync with the ROM loader; returns esptool's loader for the chip found."""
    from esptool.cmds import detect_chip
    from esptool.util import FatalError

    ser = ports.open_serial(port, options.initial_baud, timeout=3)
    _count_sent(ser, result)
    try:
        esp = detect_chip(ser, options.initial_baud, options.before, connect_attempts=options.connect_attempts)
    except FatalError as exc:
        ser.close()
        raise FlashError(f"{port}: no ESP32 bootloader answered ({_first_line(exc)}): hold BOOT, "
                         "tap RESET and try again, or check --port") from None
    if options.baud and options.baud != options.initial_baud:
        esp.change_baud(options.baud)
    return esp


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_device(esp, board, result: DeviceResult, force: bool, images: bool = True, needed: int = 0) -> None:
    """The chip must be the board's, the flash (as the device reports it, never the cache) at least the
    board's and at least what the images and their partition table span (`needed`); --force only warns,
    except that images are never written to another chip (they cannot run there: --force would only
    mislead)."""
    from esptool.cmds import detect_flash_size
    from esptool.util import flash_size_bytes

    problems = []
    if result.chip != board.chip:
        if images:
            raise FlashError(f"{result.port}: found {esp.CHIP_NAME} but board {board.name} is {board.chip}, and "
                             f"an {board.chip} image cannot run on it: pick a board of that chip with --board")
        problems.append(f"found {esp.CHIP_NAME} but board {board.name} is {board.chip}")
    minimum = board.min_chip_revision
    if minimum and esp.get_chip_revision() < minimum:
        rev = esp.get_chip_revision()
        problems.append(f"chip revision v{rev // 100}.{rev % 100} is older than board {board.name} needs "
                        f"(v{minimum // 100}.{minimum % 100})")
    if not problems and (board.flash_bytes or needed):
        found = detect_flash_size(esp)
        if found and flash_size_bytes(found) < board.flash_bytes:
            problems.append(f"flash is {found} but board {board.name} needs {board.flash_size}")
        elif found and flash_size_bytes(found) < needed:
            problems.append(f"flash is {found} but the build spans {needed:#x} bytes (its partition table "
                            "or images end there)")
    for p in problems:
        if not force:
            raise FlashError(f"{result.port}: {p}; pick the right --board, or --force to write anyway")
        result.warnings.append(f"{p} (--force)")


def extent(images: Sequence[Image]) -> int:
    """How much flash a build needs: its images' ends and, when its partition table reads, the
    partitions' ends (the bootloader refuses a table that runs past the chip's flash)."""
    from rtflash.partitions import TableError, parse_binary

    end = max((i.offset + len(i.data) for i in images), default=0)
    table = next((i for i in images if i.name == "partition-table"), None)
    if table is not None:
        try:
            end = max([end] + [p.end for p in parse_binary(table.data, table.offset).partitions])
        except TableError:
            pass  # the CLI refuses such a table before flashing (rtflash.images); here it spans itself
    return end


def _count_sent(port, result: DeviceResult) -> None:
    """Count bytes as they go over the wire (esptool's own counters are per image)."""
    write = port.write

    def counting(data):
        result.bytes_sent += len(data)
        return write(data)

    port.write = counting


def _write(esp, images: Sequence[Image], cache: _Cache, options: FlashOptions, result: DeviceResult):
    """Write what differs on the device (all of it with --full/--erase) and verify; returns the loader
    now in charge."""
    from esptool.cmds import attach_flash, erase_flash, write_flash

    if options.full or options.erase:
        esp = _prepare(esp)
        if options.erase:
            erase_flash(esp)
        spans, skipped = [(i.offset, sectors.pad4(i.data)) for i in images], 0
    else:
        attach_flash(esp)
        plans = [sectors.plan(i.data, i.offset, esp.flash_md5sum, cache.get(i)) for i in images]
        spans = [span for p in plans for span in p.spans]
        skipped = sum(p.skipped for p in plans)
    result.bytes_skipped = skipped
    if not spans:
        result.mode, result.verified = "unchanged", True
        return esp
    result.mode = "fast" if skipped else "full"
    if not esp.IS_STUB and sum(len(d) for _, d in spans) > ROM_WRITE_LIMIT:
        esp = _prepare(esp)
    write_flash(esp, spans, compress=True, force=options.force)  # verifies each span by MD5
    result.bytes_written, result.verified = sum(len(d) for _, d in spans), True
    for image in images:
        cache.put(image)
    return esp


def _read_flash_id(esp, cache: _Cache, result: DeviceResult) -> None:
    """Ask the chip for its flash id (esptool keeps it for the size check and the attach); a record that
    disagrees is replaced, with one warning."""
    try:
        flash_id = esp.flash_id(cache=False)
    except Exception:  # noqa: BLE001 - secure download mode has no SPI commands: esptool's size check says so
        return
    warning = cache.record_flash_id(flash_id)
    if warning:
        result.warnings.append(warning)


def _on_device(port: str, board, options: FlashOptions, result: DeviceResult, work: Callable,
               progress=None, on_line: OnLine | None = None, images: bool = True, needed: int = 0) -> DeviceResult:
    """Connect and check one device, then `work(esp, cache)` (returns the loader to reset); errors land in
    the result."""
    start = time.perf_counter()
    esp = None
    try:
        with esptool_log.sinks(progress, _line_sink(port, on_line)):
            esp = _connect(port, options, result)
            result.chip = chip_key(esp.CHIP_NAME)
            result.mac = ":".join(f"{b:02x}" for b in esp.read_mac())
            cache = _Cache(options.cache_dir or default_cache_dir(), result.mac)
            _read_flash_id(esp, cache, result)
            _check_device(esp, board, result, options.force, images, needed)
            esp = work(esp, cache)
            _reset(esp, options.after)
        result.ok = True
    except (RtflashError, OSError) as exc:
        result.error = str(exc) if isinstance(exc, RtflashError) else f"{port}: {exc}"
    except Exception as exc:  # esptool's FatalError and pyserial's SerialException
        result.error = _describe(port, exc)
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
                      lambda esp, cache: _write(esp, images, cache, options, result), progress, on_line,
                      needed=extent(images))


def _describe(port: str, exc: Exception) -> str:
    """esptool's failure as one line, with the advice that helps: a re-run only for a broken link."""
    import re

    text = _first_line(exc)
    if not any(word in text.lower() for word in NO_RERUN):
        return f"{port}: {text}; run again (a re-run writes only what is still missing, and verifies)"
    text = re.sub(r"\s*Use (--force|the force argument)\b.*$", "", text).rstrip(" .")
    return f"{port}: {text}; --force writes anyway"


def _line_sink(port: str, on_line: OnLine | None):
    return (lambda line: on_line(port, line)) if on_line else None


def _prepare(esp):
    """The stub (one still running is reused), flash attached: what erasing and big writes need."""
    from esptool.cmds import attach_flash, run_stub

    if not esp.IS_STUB:
        esp = run_stub(esp)
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
    """Erase the whole flash (or one region, which must lie inside the device's flash). The cache
    stays: it is a hint, and the next flash sees the erased sectors by their MD5."""
    from esptool.cmds import detect_flash_size, erase_flash, erase_region
    from esptool.util import flash_size_bytes

    def erase(esp, cache: _Cache):
        if region:
            found = detect_flash_size(esp)
            end = region[0] + region[1]
            if found and end > flash_size_bytes(found):
                raise FlashError(f"{port}: --region {region[0]:#x} {region[1]:#x} ends at {end:#x}, past the "
                                 f"end of the device's {found} flash ({flash_size_bytes(found):#x})")
        esp = _prepare(esp)
        erase_region(esp, *region) if region else erase_flash(esp)
        return esp

    return _on_device(port, board, options, DeviceResult(port=port, mode="erase"), erase, None, on_line, images=False)
