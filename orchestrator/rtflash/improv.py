"""Improv Wi-Fi serial, host side: `rtflash provision --improv` sets Wi-Fi on a running device.

Why: a board flashed from the browser (or any board running rtflash firmware) takes new Wi-Fi settings
over its console without a reflash or a reset, as ESP Web Tools does after an install. The protocol
(improv-wifi.com/serial): packets `IMPROV` + version 1 + type + length + data + checksum (low byte of
the sum of everything before it), followed by '\\n'; the device's log lines share the wire. The
firmware side is firmware-src/components/rt_core/src/rt_improv.c. The password only goes into the
one packet written to the port; it is registered for redaction and never printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rtflash.errors import CredentialError, PortError

HEADER = b"IMPROV"
VERSION = 1
CURRENT_STATE, ERROR_STATE, RPC, RPC_RESULT = 0x01, 0x02, 0x03, 0x04
CMD_WIFI_SETTINGS, CMD_CURRENT_STATE, CMD_DEVICE_INFO, CMD_WIFI_NETWORKS = 0x01, 0x02, 0x03, 0x04
STATES = {0x02: "ready", 0x03: "provisioning", 0x04: "provisioned"}
ERRORS = {0x00: "no error", 0x01: "invalid RPC packet", 0x02: "unknown RPC command", 0x03: "unable to connect",
          0x05: "bad hostname", 0xFF: "unknown error"}
PROVISIONED = 0x04


def packet(kind: int, data: bytes) -> bytes:
    """One packet as a client writes it (with the trailing newline the Improv SDK sends)."""
    if len(data) > 255:
        raise ValueError("an Improv packet carries at most 255 data bytes")
    body = HEADER + bytes([VERSION, kind, len(data)]) + data
    return body + bytes([sum(body) & 0xFF]) + b"\n"


def rpc(command: int, data: bytes = b"") -> bytes:
    return packet(RPC, bytes([command, len(data)]) + data)


def wifi_settings(ssid: str, password: str) -> bytes:
    """The "send Wi-Fi settings" RPC; SSID 1-32 bytes, password at most 64 (the device checks WPA2 rules)."""
    s, p = ssid.encode("utf-8"), password.encode("utf-8")
    if not 1 <= len(s) <= 32:
        raise CredentialError(f"Wi-Fi SSID is {len(s)} bytes; an SSID has 1-32 bytes (--wifi-ssid)")
    if len(p) > 64:
        raise CredentialError(f"Wi-Fi password is {len(p)} bytes; at most 64 fit (--wifi-password)")
    return rpc(CMD_WIFI_SETTINGS, bytes([len(s)]) + s + bytes([len(p)]) + p)


def strings(data: bytes) -> list[str]:
    """An RPC result's data (command, length, then length-prefixed strings) as its strings."""
    out, i, end = [], 2, 2 + (data[1] if len(data) > 1 else 0)
    while i < min(end, len(data)):
        n = data[i]
        out.append(data[i + 1:i + 1 + n].decode("utf-8", "replace"))
        i += 1 + n
    return out


@dataclass(frozen=True)
class Packet:
    kind: int
    data: bytes

    @property
    def value(self) -> int:
        return self.data[0] if self.data else -1


@dataclass
class Reader:
    """Splits the device's byte stream into Improv packets and log text, in any split of reads.

    Like the Improv SDK's client: a packet starts a line; a line that does not begin with `IMPROV`
    is log text. Packets with a bad checksum or another version are dropped."""

    buf: bytearray = field(default_factory=bytearray)
    text: bytearray = field(default_factory=bytearray)
    _after_packet: bool = False

    def feed(self, data: bytes) -> list[Packet]:
        self.buf += data
        found = []
        while self.buf:
            if self._after_packet:  # the newline that ends a packet is not log text
                self._after_packet = False
                if self.buf[:1] == b"\n":
                    del self.buf[:1]
                    continue
            if not self.buf.startswith(HEADER[:len(self.buf)]):
                cut = self.buf.find(b"\n")
                if cut < 0:
                    head = self.buf.find(HEADER[:1], 1)
                    self.text += self.buf if head < 0 else self.buf[:head]
                    del self.buf[:len(self.buf) if head < 0 else head]
                    break
                self.text += self.buf[:cut + 1]
                del self.buf[:cut + 1]
                continue
            if len(self.buf) < 9:
                break
            total = 9 + self.buf[8] + 1
            if len(self.buf) < total:
                break
            raw = bytes(self.buf[:total])
            del self.buf[:total]
            if raw[6] == VERSION and sum(raw[:-1]) & 0xFF == raw[-1]:
                found.append(Packet(raw[7], raw[9:-1]))
            self._after_packet = True
        return found


@dataclass
class Outcome:
    state: str
    url: str = ""
    device: list[str] = field(default_factory=list)


class Session:
    """One Improv conversation over an open pyserial port."""

    def __init__(self, port, url: str, on_line: Callable[[str], None] = lambda line: None) -> None:
        self.port, self.url, self.on_line = port, url, on_line
        self.reader = Reader()
        self.state = -1
        self.error = 0

    def _read(self, until: float) -> list[Packet]:
        try:
            data = self.port.read(512)
        except OSError as exc:  # pyserial's SerialException is an OSError; a pty gone, a socket closed
            raise PortError(f"{self.url}: {exc}; is the device still connected?") from None
        if not data:
            if time.monotonic() < until:
                time.sleep(0.01)
            return []
        return self.reader.feed(data)

    def _note(self, pkt: Packet) -> None:
        if pkt.kind == CURRENT_STATE and pkt.value != self.state:
            self.state = pkt.value
            self.on_line(f"state: {STATES.get(self.state, f'unknown ({self.state})')}")
        elif pkt.kind == ERROR_STATE and pkt.value != self.error:
            self.error = pkt.value
            if self.error:
                self.on_line(f"error: {ERRORS.get(self.error, f'unknown ({self.error})')}")

    def send(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.port.flush()
        except OSError as exc:
            raise PortError(f"{self.url}: {exc}; is the device still connected?") from None

    def wait_state(self, timeout: float, retry: float = 1.0) -> int:
        """Ask for the current state (again every `retry` s, as the device may be booting) until it answers."""
        deadline = time.monotonic() + timeout
        next_ask = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_ask:
                self.send(rpc(CMD_CURRENT_STATE))
                next_ask = time.monotonic() + retry
            for pkt in self._read(deadline):
                self._note(pkt)
                if pkt.kind == CURRENT_STATE:
                    return pkt.value
        raise PortError(f"no Improv answer from {self.url} in {timeout:g} s: is rtflash firmware running there "
                        "(with Improv: built after issue 21), and nothing else using the port?")

    def call(self, data: bytes, command: int, timeout: float, done: Callable[[Packet], bool] | None = None):
        """Send an RPC and collect packets until its result (or an error state) arrives."""
        self.error = 0
        self.send(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pkt in self._read(deadline):
                self._note(pkt)
                if pkt.kind == ERROR_STATE and pkt.value != 0:
                    return pkt
                if pkt.kind == RPC_RESULT and pkt.data[:1] == bytes([command]) and (done is None or done(pkt)):
                    return pkt
        raise PortError(f"{self.url}: no answer to the Improv request in {timeout:g} s")


def open_port(url: str, baud: int = 115200):
    """Open the port without touching DTR/RTS (no reset: the running firmware is who answers)."""
    from rtflash.ports import open_serial

    return open_serial(url, baud, timeout=0.05, no_reset=True)


def provision(url: str, ssid: str, password: str, on_line: Callable[[str], None], timeout: float = 30.0,
              baud: int = 115200) -> Outcome:
    """Set Wi-Fi through Improv on the device at `url`: find it, say what it is, send the settings."""
    from rtflash.redact import register

    if password:
        register(password)
    data = wifi_settings(ssid, password)
    port = open_port(url, baud)
    try:
        session = Session(port, url, on_line)
        session.wait_state(min(timeout, 10.0))
        info = session.call(rpc(CMD_DEVICE_INFO), CMD_DEVICE_INFO, 5.0)
        device = strings(info.data) if info.kind == RPC_RESULT else []
        if device:
            on_line("device: " + " ".join(device[:3]) + (f' ("{device[3]}")' if len(device) > 3 else ""))
        answer = session.call(data, CMD_WIFI_SETTINGS, timeout)
        if answer.kind == ERROR_STATE:
            why = ERRORS.get(answer.value, f"error {answer.value}")
            hint = ("check the Wi-Fi name and password (--wifi-ssid, --wifi-password)"
                    if answer.value in (0x01, 0x03) else "see the device's log (rtflash monitor)")
            raise CredentialError(f"{url}: the device refused the Wi-Fi settings for \"{ssid}\": {why}; {hint}")
        result = strings(answer.data)
        url_given = result[0] if result else ""
        if url_given:
            on_line(f"next: {url_given}")
        return Outcome(STATES.get(session.state, str(session.state)), url_given, device)
    finally:
        port.close()
