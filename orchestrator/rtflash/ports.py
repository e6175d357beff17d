"""Serial ports: list them, pick one, open one. The one place rtflash opens a serial port.

Every open goes through `open_serial` so that a missing, busy or forbidden port becomes one
`PortError` line with the fix (dialout group, udev rule), never a pyserial traceback. Ports are
identified by USB VID/PID/serial so that a USB-Serial-JTAG board, which re-enumerates on every
reset (sometimes under a new /dev path), can be found again.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from rtflash.errors import PortError

# USB bridges seen on ESP32-S3 boards: (vid, pid or None for any) -> bridge name.
BRIDGES: dict[tuple[int, int | None], str] = {
    (0x303A, 0x1001): "usb-serial-jtag",  # Espressif's built-in USB-Serial-JTAG
    (0x303A, None): "espressif-usb",      # Espressif TinyUSB CDC / other Espressif PIDs
    (0x10C4, None): "cp210x",             # Silicon Labs CP210x
    (0x1A86, None): "ch34x",              # WCH CH340/CH343/CH9102
    (0x0403, None): "ftdi",               # FTDI FT232/FT2232
}
URL_SCHEMES = ("socket://", "rfc2217://", "loop://", "spy://", "hwgrep://", "alt://", "cp2110://")
DIALOUT_FIX = ("add yourself to the serial group (sudo usermod -aG dialout $USER, then log in again; "
               "'uucp' on Arch) or install the udev rule shown by `rtflash doctor`")


@dataclass(frozen=True)
class PortInfo:
    """One serial port as the OS reports it; `bridge` is our guess of the USB-UART chip."""

    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    description: str = ""
    location: str | None = None
    bridge: str = "unknown"

    def same_device(self, other: PortInfo) -> bool:
        """Same physical device: VID/PID and serial number, or USB location when there is no serial."""
        if self.vid is None or self.vid != other.vid or self.pid != other.pid:
            return False
        if self.serial_number or other.serial_number:
            return self.serial_number == other.serial_number
        return self.location is not None and self.location == other.location

    def usb_id(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}" if self.vid is not None and self.pid is not None else ""

    def to_dict(self) -> dict:
        return {**asdict(self), "usb_id": self.usb_id()}


def bridge_of(vid: int | None, pid: int | None) -> str:
    if vid is None:
        return "unknown"
    return BRIDGES.get((vid, pid)) or BRIDGES.get((vid, None)) or "unknown"


def _info(p) -> PortInfo:
    return PortInfo(device=p.device, vid=p.vid, pid=p.pid, serial_number=p.serial_number,
                    description=p.description or "", location=p.location,
                    bridge=bridge_of(p.vid, p.pid))


def list_ports() -> list[PortInfo]:
    """Serial ports on this machine, USB ones first (they are the ones an ESP32 board shows up as)."""
    from serial.tools import list_ports as lp

    ports = [_info(p) for p in lp.comports()]
    return sorted(ports, key=lambda p: (p.vid is None, p.device))


def candidates(ports: Sequence[PortInfo], board=None) -> list[PortInfo]:
    """Ports that can be an ESP32 board: known USB bridges; the board's own USB id first."""
    usb = [p for p in ports if p.bridge != "unknown"]
    wanted = [w.lower() for w in getattr(board, "usb_vid_pid", ())]
    mine = [p for p in usb if p.usb_id() in wanted]
    return mine or usb


def is_url(spec: str) -> bool:
    return spec.startswith(URL_SCHEMES)


def resolve(spec: str, board=None, ask: Callable[[list[PortInfo]], PortInfo] | None = None,
            ports: Sequence[PortInfo] | None = None) -> str:
    """The port to use: `auto` picks the only candidate (or asks); URLs and paths pass through."""
    if spec and spec != "auto":
        return spec
    found = candidates(list_ports() if ports is None else ports, board)
    if not found:
        raise PortError("no serial port found for --port auto: plug the board in (a data cable, "
                        "not charge-only) or pass --port /dev/ttyACM0; `rtflash ports` lists ports")
    if len(found) == 1:
        return found[0].device
    if ask is None:
        names = ", ".join(p.device for p in found)
        raise PortError(f"several serial ports could be the board ({names}): pass --port")
    return ask(found).device


def describe(url: str) -> PortInfo | None:
    """The PortInfo of a device path (resolving symlinks such as /dev/serial/by-id/...)."""
    if is_url(url):
        return None
    real = os.path.realpath(url)
    for p in list_ports():
        if p.device in (url, real):
            return p
    return None


def find_again(info: PortInfo, ports: Sequence[PortInfo] | None = None) -> str | None:
    """Where the same device is now: it may come back under a new path after a USB reset."""
    for p in list_ports() if ports is None else ports:
        if p.device == info.device and info.vid is None:
            return p.device
        if info.same_device(p):
            return p.device
    return None


def port_error(url: str, exc: BaseException) -> PortError:
    """A one-line PortError for an OS error opening `url`, with the fix."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return PortError(f"permission denied on {url}: {DIALOUT_FIX}")
    if code in (errno.EBUSY,) or "busy" in text.lower() or "exclusively lock" in text:
        return PortError(f"{url} is busy: close the other program using it (a monitor, another "
                         "rtflash, ModemManager) and try again")
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) or "No such file" in text:
        return PortError(f"serial port {url} not found: is the board plugged in? "
                         "`rtflash ports` lists the ports")
    if code == errno.ECONNREFUSED or "refused" in text.lower():
        return PortError(f"nothing is listening at {url}: start the server or check the address")
    return PortError(f"cannot open serial port {url}: {text.splitlines()[0] if text else type(exc).__name__}")


def check_spec(url: str) -> None:
    """What pyserial would misreport: a network URL without a numeric port (it blames its logging
    options), a regular file given as the port (it says "Inappropriate ioctl")."""
    import os
    import stat
    from urllib.parse import urlsplit

    if url.startswith(("socket://", "rfc2217://")):
        scheme = url.split("://", 1)[0]
        try:
            port = urlsplit(url).port
        except ValueError:
            port = None
        if not urlsplit(url).hostname or port is None or not 0 < port < 65536:
            raise PortError(f"{url}: not {scheme}://HOST:PORT with a port number 1-65535; e.g. "
                            f"{scheme}://127.0.0.1:3333")
        return
    if is_url(url):
        return
    try:
        mode = os.stat(url).st_mode
    except OSError:
        return  # missing: open() says "not found", with the fix
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a regular file"
        raise PortError(f"{url} is {kind}, not a serial port: give the device (e.g. /dev/ttyACM0; "
                        "`rtflash ports` lists them) or a URL such as socket://HOST:PORT")


_FLUSHES = ("reset_input_buffer", "_reset_input_buffer")  # what pyserial's open() calls (socket://, a tty)


def open_serial(url: str, baud: int, timeout: float = 0.05, keep_input: bool = False, no_reset: bool = False,
                **kw):
    """Open `url` (a path or any pyserial URL) exclusively; errors become one PortError line.

    `keep_input`: keep what arrived while the port opened. pyserial's open() discards it, so a device
    that talks the moment it is opened (reset by the open's DTR/RTS, a socket:// peer that greets)
    would lose its first line to the monitor.
    `no_reset`: DTR and RTS stay low through the open, so the running firmware is not reset (Improv)."""
    import serial

    check_spec(url)
    kw.setdefault("exclusive", None if is_url(url) else True)
    if kw["exclusive"] is None:
        del kw["exclusive"]
    try:
        ser = serial.serial_for_url(url, baudrate=baud, timeout=timeout, do_not_open=True, **kw)
        if no_reset:
            ser.dtr = False
            ser.rts = False
        if keep_input:
            for name in _FLUSHES:
                setattr(ser, name, lambda: None)  # shadows the method for this open() only
        try:
            ser.open()
        finally:
            for name in _FLUSHES:
                ser.__dict__.pop(name, None)
        return ser
    except (OSError, serial.SerialException, ValueError) as exc:
        raise port_error(url, exc) from None
