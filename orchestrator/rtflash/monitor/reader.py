"""The reader thread: port -> queue, in big chunks, and back again after the device re-enumerates.

Why a thread and a queue: rendering (or an addr2line run) must never stall reading, or the kernel's
small serial buffer overflows and bytes are lost. The thread does nothing but read whatever is
waiting and stamp it with the host time. When the port vanishes (a USB-Serial-JTAG board drops off
the bus on every reset) it looks for the same device by VID/PID/serial, possibly under a new path,
and reopens it; everything that arrived from the moment the port opened is queued (pyserial's
open() would flush it, a tty's and a socket's alike: `open_serial(keep_input=True)` keeps it).

Events put on the queue: ("data", bytes, time), ("gone", reason), ("back", path), ("end", reason).
"""

from __future__ import annotations

import queue
import threading
import time

from rtflash import ports
from rtflash.errors import PortError

RESET_HOLD = 0.2  # seconds EN is held low (esptool/esp-idf-monitor use 0.1-0.2 s)


class SerialReader:
    """Owns the serial port. `open()` in the caller's thread (so errors reach the CLI), then `start()`."""

    def __init__(self, url: str, baud: int, events: queue.Queue, reconnect: bool = True,
                 retry: float = 0.2) -> None:
        self.url, self.baud, self.events = url, baud, events
        self.reconnect, self.retry = reconnect, retry
        self.info = None if ports.is_url(url) else ports.describe(url)
        self.path = url
        self.ser = None
        self.bytes_read = 0
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._paused = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        self.ser = ports.open_serial(self.path, self.baud, keep_input=True)
        self._socket = self.path.startswith("socket://")

    def start(self) -> None:
        if self.ser is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name="rtflash-serial", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self._close()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._pause.is_set():
                self._close()
                self._paused.set()
                self._stop.wait(0.05)
                if not self._pause.is_set():
                    self._paused.clear()
                    self._reopen("resumed")
                continue
            try:
                data = self._read_chunk()
            except Exception as exc:  # noqa: BLE001 - pyserial raises SerialException, OSError, TypeError
                if self._stop.is_set() or self._pause.is_set():
                    continue
                if not self._lost(exc):
                    return
                continue
            if data:
                self.bytes_read += len(data)
                self.events.put(("data", data, time.time()))

    def _read_chunk(self) -> bytes:
        """Everything waiting, at least one byte (or nothing after the read timeout)."""
        ser = self.ser
        if ser is None:
            raise PortError("port closed")
        if not self._socket:  # a tty's in_waiting is the kernel's count, rfc2217's its queue's
            return ser.read(ser.in_waiting or 1)
        data = ser.read(1)  # socket:// reports 0 or 1 waiting: read one, then drain without waiting
        if data:
            ser.timeout = 0
            try:
                data += ser.read(1 << 16)
            finally:
                ser.timeout = 0.05
        return data

    def _lost(self, exc: BaseException) -> bool:
        """The port went away: reopen it (True) or report the end (False)."""
        self._close()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.events.put(("gone", reason))
        if not self.reconnect:
            self.events.put(("end", reason))
            return False
        return self._reopen("reconnected")

    def _reopen(self, why: str) -> bool:
        """Wait for the same device (by VID/PID/serial when known, else the same path or URL) and open it."""
        while not self._stop.is_set() and not self._pause.is_set():
            path = ports.find_again(self.info) if self.info else self.path
            if path:
                try:
                    with self._lock:
                        self.ser = ports.open_serial(path, self.baud, keep_input=True)
                    self.path, self._socket = path, path.startswith("socket://")
                    self.events.put(("back", path, why))
                    return True
                except PortError:  # not back yet, or udev has not set its permissions yet
                    pass
            self._stop.wait(self.retry)
        return True

    def _close(self) -> None:
        with self._lock:
            ser, self.ser = self.ser, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001, S110 - closing a vanished port may fail; it is gone either way
                pass

    def write(self, data: bytes) -> None:
        """Send keys to the device; a write to a vanished port is dropped (the reader reports the loss)."""
        with self._lock:
            ser = self.ser
        if ser is not None:
            try:
                ser.write(data)
            except Exception:  # noqa: BLE001, S110 - the reader reports the loss
                pass

    def reset(self) -> bool:
        """Hard reset through the auto-reset circuit: IO0 high (DTR off), EN pulsed low (RTS on, then off)."""
        with self._lock:
            ser = self.ser
        if ser is None:
            return False
        try:
            ser.dtr = False
            ser.rts = True
            time.sleep(RESET_HOLD)
            ser.rts = False
            ser.dtr = ser.dtr  # re-apply DTR: some USB CDC drivers only send the line state with both pins
        except Exception:  # noqa: BLE001 - the port may vanish during the reset (USB-Serial-JTAG)
            return False
        return True

    def pause(self, timeout: float = 5.0) -> None:
        """Close the port for someone else (the flasher) until `resume()`."""
        self._paused.clear()
        self._pause.set()
        self._paused.wait(timeout)

    def resume(self) -> None:
        self._pause.clear()
