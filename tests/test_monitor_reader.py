"""The reader thread on a real pty and a real socket: no byte lost, reconnects, keys out, reset lines."""

from __future__ import annotations

import os
import queue
import threading
import time

import pytest

from rtflash import ports
from rtflash.errors import PortError
from rtflash.monitor.reader import SerialReader


def boot_log(lines: int) -> bytes:
    levels = "IWEDV"
    out = bytearray(b"ESP-ROM:esp32s3-20210327\r\nrst:0x1 (POWERON),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n")
    for i in range(lines):
        lv = levels[i % 5]
        out += f"\x1b[0;3{i % 7}m{lv} ({i}) tag{i % 13}: line {i} " .encode() + bytes([i % 256]) + b"\x1b[0m\r\n"
    return bytes(out)


def collect(events: queue.Queue, until, timeout: float = 20.0) -> list[tuple]:
    """Events until `until(events_so_far)` is true; fails the test on timeout."""
    seen: list[tuple] = []
    end = time.monotonic() + timeout
    while not until(seen):
        assert time.monotonic() < end, f"timed out; events so far: {seen}"
        try:
            seen.append(events.get(timeout=0.1))
        except queue.Empty:
            pass
    return seen


def data_of(seen: list[tuple]) -> bytes:
    return b"".join(e[1] for e in seen if e[0] == "data")


@pytest.fixture
def pty_pair():
    made = []

    def make():
        master, slave = os.openpty()
        made.append((master, slave))
        return master, os.ttyname(slave)

    yield make
    for fds in made:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def test_pty_stream_written_flat_out_arrives_byte_for_byte(pty_pair):
    master, path = pty_pair()
    payload = boot_log(20000)  # ~0.9 MB, every byte value included
    reader = SerialReader(path, 2_000_000, queue.Queue())
    reader.start()
    try:
        writer = threading.Thread(target=lambda: os.write(master, payload) and None)
        writer.start()
        seen = collect(reader.events, lambda s: len(data_of(s)) >= len(payload))
        writer.join()
        assert data_of(seen) == payload
        assert reader.bytes_read == len(payload)
        assert max(len(e[1]) for e in seen) > 1, "reads are chunked, not byte by byte"
    finally:
        reader.stop()


def test_socket_stream_arrives_byte_for_byte(device_server):
    payload = boot_log(5000)
    server = device_server(payload)
    reader = SerialReader(server.url, 115200, queue.Queue(), reconnect=False)
    reader.start()
    try:
        seen = collect(reader.events, lambda s: any(e[0] == "end" for e in s))
    finally:
        reader.stop()
    assert data_of(seen) == payload
    assert [e[0] for e in seen if e[0] != "data"] == ["gone", "end"]
    assert len([e for e in seen if e[0] == "data"]) < len(payload) / 100, "socket reads drain in bulk"


def test_socket_reconnect_loses_nothing_after_the_reopen(device_server):
    second = b"".join(b"I (%d) app: after reset %d\r\n" % (i, i) for i in range(3000))
    server = device_server(b"I (1) app: before reset\r\n", second)
    reader = SerialReader(server.url, 115200, queue.Queue(), reconnect=True, retry=0.05)
    reader.start()
    try:
        seen = collect(reader.events, lambda s: data_of(s).endswith(b"after reset 2999\r\n"))
    finally:
        reader.stop()
    kinds = [e[0] for e in seen]
    assert kinds.count("gone") == 1 and kinds.count("back") == 1
    back = kinds.index("back")
    assert data_of(seen[:back]) == b"I (1) app: before reset\r\n"
    assert data_of(seen[back:]) == second
    assert seen[back][1:] == (server.url, "reconnected")


def test_usb_device_found_again_under_a_new_path(pty_pair, monkeypatch):
    """USB-Serial-JTAG re-enumerates on reset: same VID/PID/serial, new /dev path."""
    master1, path1 = pty_pair()
    master2, path2 = pty_pair()
    present = [ports.PortInfo(path1, 0x303A, 0x1001, "F4:12:FA:00:11:22", "USB JTAG/serial debug unit",
                              "1-1:1.0", "usb-serial-jtag")]
    monkeypatch.setattr(ports, "list_ports", lambda: list(present))
    reader = SerialReader(path1, 115200, queue.Queue(), retry=0.05)
    assert reader.info is not None and reader.info.serial_number == "F4:12:FA:00:11:22"
    reader.start()
    try:
        os.write(master1, b"I (10) rtflash: firmware 1.0 board sonatino\r\n")
        collect(reader.events, lambda s: b"sonatino" in data_of(s))
        present.clear()
        os.close(master1)  # the device drops off the bus
        collect(reader.events, lambda s: any(e[0] == "gone" for e in s))
        time.sleep(0.2)  # a few reopen attempts find nothing
        present.append(ports.PortInfo(path2, 0x303A, 0x1001, "F4:12:FA:00:11:22", "USB JTAG/serial debug unit",
                                      "1-1:1.0", "usb-serial-jtag"))
        back = collect(reader.events, lambda s: any(e[0] == "back" for e in s))
        assert back[-1] == ("back", path2, "reconnected")
        assert reader.path == path2
        os.write(master2, b"I (11) boot: after the reset\r\n")
        seen = collect(reader.events, lambda s: b"after the reset\r\n" in data_of(s))
        assert data_of(seen) == b"I (11) boot: after the reset\r\n"
    finally:
        reader.stop()


def test_no_reconnect_ends_when_the_pty_closes(pty_pair):
    master, path = pty_pair()
    reader = SerialReader(path, 115200, queue.Queue(), reconnect=False)
    reader.start()
    try:
        os.write(master, b"last words\r\n")
        collect(reader.events, lambda s: b"last words" in data_of(s))
        os.close(master)
        seen = collect(reader.events, lambda s: any(e[0] == "end" for e in s))
        assert [e[0] for e in seen if e[0] != "data"] == ["gone", "end"]
    finally:
        reader.stop()


def test_keys_are_written_to_the_device(device_server):
    server = device_server(lambda conn: (conn.sendall(b"esp32> "), server.drain(conn, 1.0)))
    reader = SerialReader(server.url, 115200, queue.Queue())
    reader.start()
    try:
        collect(reader.events, lambda s: data_of(s) == b"esp32> ")
        reader.write(b"help\r")
        deadline = time.monotonic() + 5
        while bytes(server.received) != b"help\r" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bytes(server.received) == b"help\r"
    finally:
        reader.stop()


def test_pause_closes_the_port_and_resume_reopens_it(device_server):
    closed = threading.Event()

    def first(conn):
        conn.sendall(b"one\n")
        server.drain(conn, 5.0)  # returns when the monitor closes the port
        closed.set()

    server = device_server(first, b"two\n")
    reader = SerialReader(server.url, 115200, queue.Queue(), retry=0.05)
    reader.start()
    try:
        collect(reader.events, lambda s: data_of(s) == b"one\n")
        reader.pause()
        assert closed.wait(3), "the port must be free for the flasher while paused"
        reader.resume()
        seen = collect(reader.events, lambda s: data_of(s) == b"two\n")
        assert [e[0] for e in seen if e[0] != "data"] == ["back"] and seen[0][2] == "resumed"
    finally:
        reader.stop()


class Lines:
    """Records DTR/RTS changes like a USB-UART bridge's modem lines would see them."""

    def __init__(self) -> None:
        self.log: list[tuple[str, bool]] = []
        self._dtr = self._rts = True

    @property
    def dtr(self):
        return self._dtr

    @dtr.setter
    def dtr(self, value):
        self._dtr = value
        self.log.append(("dtr", value))

    @property
    def rts(self):
        return self._rts

    @rts.setter
    def rts(self, value):
        self._rts = value
        self.log.append(("rts", value))

    def close(self):
        pass


def test_reset_pulses_en_through_rts_with_io0_high():
    reader = SerialReader("socket://127.0.0.1:9", 115200, queue.Queue())
    reader.ser = lines = Lines()
    assert reader.reset()
    assert lines.log == [("dtr", False), ("rts", True), ("rts", False), ("dtr", False)]


def test_reset_on_a_port_without_modem_lines_reports_failure(pty_pair):
    _master, path = pty_pair()
    reader = SerialReader(path, 115200, queue.Queue())
    reader.open()
    try:
        assert reader.reset() is False  # a pty has no DTR/RTS: ENOTTY, reported, not raised
    finally:
        reader.stop()


def test_open_errors_are_one_line_port_errors(pty_pair, tmp_path):
    with pytest.raises(PortError, match=r"serial port .*ttyNOPE not found"):
        SerialReader(str(tmp_path / "ttyNOPE"), 115200, queue.Queue()).open()
    _master, path = pty_pair()
    first = SerialReader(path, 115200, queue.Queue())
    first.open()
    try:
        with pytest.raises(PortError, match="is busy"):
            SerialReader(path, 115200, queue.Queue()).open()
    finally:
        first.stop()


class Rfc2217Device:
    """A device behind an RFC 2217 server (pyserial's PortManager): what it prints comes from a
    loop:// port; the DTR/RTS changes the client asks for are recorded as a bridge would apply them."""

    def __init__(self, payload: bytes) -> None:
        import socket

        self.payload = payload
        self.lines: list[tuple[str, bool]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"rfc2217://127.0.0.1:{self.listener.getsockname()[1]}"
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _port(self):
        from serial.urlhandler.protocol_loop import Serial as Loop

        lines = self.lines

        class Recording(Loop):
            def _update_dtr_state(self):
                lines.append(("dtr", self._dtr_state))

            def _update_rts_state(self):
                lines.append(("rts", self._rts_state))

        return Recording("loop://", timeout=0.05)

    def _serve(self) -> None:
        import serial.rfc2217

        conn, _ = self.listener.accept()
        port = self._port()
        manager = serial.rfc2217.PortManager(port, type("Out", (), {"write": lambda _s, d: conn.sendall(d)})())
        conn.settimeout(0.02)
        start = time.monotonic()
        with conn:
            while not self.done.is_set():
                try:
                    data = conn.recv(4096)
                    if not data:
                        return
                    for byte in manager.filter(data):
                        port.write(byte)
                except TimeoutError:
                    pass
                if self.payload and time.monotonic() - start > 0.3:  # talks once the client is set up
                    port.write(self.payload)
                    self.payload = b""
                waiting = port.in_waiting
                if waiting:
                    conn.sendall(b"".join(manager.escape(port.read(waiting))))


@pytest.mark.filterwarnings("ignore:set(Daemon|Name)\\(\\) is deprecated:DeprecationWarning")  # pyserial 3.5's rfc2217
def test_rfc2217_port_reads_and_resets_through_the_modem_lines():
    device = Rfc2217Device(b"I (1) app: over rfc2217\r\n" * 50)
    reader = SerialReader(device.url, 115200, queue.Queue())
    reader.start()
    try:
        seen = collect(reader.events, lambda s: data_of(s).count(b"\n") == 50)
        assert data_of(seen) == b"I (1) app: over rfc2217\r\n" * 50
        assert reader.reset()
        end = time.monotonic() + 5
        while device.lines[-4:] != [("dtr", False), ("rts", True), ("rts", False), ("dtr", False)]:
            assert time.monotonic() < end, device.lines
            time.sleep(0.02)
    finally:
        device.done.set()
        reader.stop()
