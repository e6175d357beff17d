"""Improv Wi-Fi serial: the host side (rtflash.improv) and, end to end, the real linux firmware.

The linux firmware (built once per session from firmware-src with the real ESP-IDF in ../shared) speaks
Improv on its console: stdin/stdout on a pty, or on pipes bridged to a TCP socket on 127.0.0.1 for
`socket://`. `rtflash provision --improv` (the installed script) sets Wi-Fi on it; the settings are read
back from the file the linux build keeps in place of NVS, and from the firmware itself after a restart.
Bad packets each get the protocol's error state. The canary password is never in the firmware's
output, the monitor's output or its --log.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
import time
import tty
from pathlib import Path

import pytest

from rtflash import improv
from rtflash.errors import CredentialError
from testkit.shared import stop_process

PASSWORD = "canary-" + "improv-5e1b77"  # in two pieces: no secret-shaped literal in the tree
SSID = "HomeNet"


# --- host side --------------------------------------------------------------------------------

def test_packets_are_built_as_the_spec_says():
    pkt = improv.rpc(improv.CMD_CURRENT_STATE)
    assert pkt[:9] == b"IMPROV\x01\x03\x02" and pkt[9:11] == b"\x02\x00" and pkt[-1:] == b"\n"
    assert pkt[11] == sum(pkt[:11]) & 0xFF
    wifi = improv.wifi_settings("MyWirelessAP", "mysecurepassword")
    # the spec's example: 01 1E 0C {MyWirelessAP} 10 {mysecurepassword}
    assert wifi[9:] == b"\x01\x1e\x0cMyWirelessAP\x10mysecurepassword" + wifi[-2:-1] + b"\n"
    for bad in ("", "x" * 33):
        with pytest.raises(CredentialError, match="--wifi-ssid"):
            improv.wifi_settings(bad, "password1")
    with pytest.raises(CredentialError, match="--wifi-password"):
        improv.wifi_settings(SSID, "p" * 65)


def test_reader_splits_log_and_packets_in_any_split():
    state = improv.packet(improv.CURRENT_STATE, b"\x04")
    result = improv.packet(improv.RPC_RESULT, b"\x03\x06\x05hello")
    bad = bytearray(improv.packet(improv.ERROR_STATE, b"\x01"))
    bad[-2] ^= 1
    stream = b"I (12) rtflash: booting\n" + state + b"IMPRESSIVE log line\n" + bytes(bad) + result + b"W (13) x: y\n"
    for chunk in (1, 2, 7, len(stream)):
        reader = improv.Reader()
        found = []
        for i in range(0, len(stream), chunk):
            found += reader.feed(stream[i:i + chunk])
        assert [(p.kind, p.data) for p in found] == [(1, b"\x04"), (4, b"\x03\x06\x05hello")]
        assert bytes(reader.text) == b"I (12) rtflash: booting\nIMPRESSIVE log line\nW (13) x: y\n"
    assert improv.strings(b"\x03\x08\x03abc\x03def") == ["abc", "def"]


# --- the real linux firmware ------------------------------------------------------------------

def _env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "OPENAI_", "WIFI_", "RT_WAV"))}
    return {**base, **extra}


class PtyFirmware:
    """The firmware with a pty as its console: it holds the master, the tests open the slave's path."""

    def __init__(self, elf: Path, settings: Path) -> None:
        master, self.slave = os.openpty()
        tty.setraw(self.slave)  # a terminal's echo would hand the firmware its own output
        self.path = os.ttyname(self.slave)
        self.proc = subprocess.Popen([str(elf)], stdin=master, stdout=master, stderr=subprocess.STDOUT,
                                     env=_env({"RTFLASH_SETTINGS_FILE": str(settings)}), cwd=settings.parent)
        os.close(master)

    def stop(self) -> None:
        stop_process(self.proc)
        os.close(self.slave)


class SocketFirmware:
    """The firmware on pipes, its console bridged to one TCP client at a time on 127.0.0.1; every byte
    it writes is also kept (`output`), so the test sees its whole raw console."""

    def __init__(self, elf: Path, settings: Path) -> None:
        self.output = bytearray()
        self.proc = subprocess.Popen([str(elf)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=_env({"RTFLASH_SETTINGS_FILE": str(settings)}),
                                     cwd=settings.parent, bufsize=0)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.client: socket.socket | None = None
        self.lock = threading.Lock()
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._accept, daemon=True).start()

    def _pump_out(self) -> None:
        while True:
            data = os.read(self.proc.stdout.fileno(), 4096)
            if not data:
                return
            with self.lock:
                self.output += data
                if self.client is not None:
                    try:
                        self.client.sendall(data)
                    except OSError:
                        self.client = None

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self.lock:
                self.client = conn
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    break
                self.proc.stdin.write(data)
            with self.lock:
                self.client = None
            conn.close()

    def stop(self) -> None:
        self.server.close()
        stop_process(self.proc)


def run(exe, *args, cwd, env=None, timeout=60):
    return subprocess.run([exe, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env(env or {}))


def _read_settings(path: Path) -> dict[str, str]:
    """The linux build's stand-in for NVS: `key<TAB>length<TAB>bytes` lines (firmware-src/main/improv_console.c)."""
    data, out = path.read_bytes(), {}
    while data:
        key, length, rest = data.split(b"\t", 2)
        n = int(length)
        out[key.decode()] = rest[:n].decode()
        assert rest[n:n + 1] == b"\n"
        data = rest[n + 1:]
    return out


def test_provision_improv_over_a_pty_reaches_provisioned_and_the_settings_are_stored(
        linux_firmware, rtflash_exe, tmp_path: Path):
    settings = tmp_path / "settings"
    fw = PtyFirmware(linux_firmware.elf, settings)
    try:
        started = time.perf_counter()
        result = run(rtflash_exe, "provision", "--improv", "--port", fw.path, "--wifi-ssid", SSID, cwd=tmp_path,
                     env={"RTFLASH_WIFI_PASSWORD": PASSWORD})
        seconds = time.perf_counter() - started
    finally:
        fw.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [f"{fw.path}: state: ready", f'{fw.path}: device: rtflash 0.1.0 linux/linux ("rtflash linux")',
                     f"{fw.path}: state: provisioning", f"{fw.path}: state: provisioned",
                     f"{fw.path}: Wi-Fi set: provisioned"], result.stdout
    assert "go through NVS" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert seconds < 15
    # stored (0600), with the keys `rtflash provision` writes into NVS
    assert settings.stat().st_mode & 0o777 == 0o600
    assert _read_settings(settings) == {"wifi_ssid": SSID, "wifi_pass": PASSWORD}

    # read back by the firmware itself: restarted, it says it is provisioned, over Improv and in its log
    log = tmp_path / "monitor.log"
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    monitor = subprocess.Popen([rtflash_exe, "monitor", "--port", path, "--timeout", "3", "--log", str(log)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env({}), cwd=tmp_path)
    time.sleep(1.0)  # the monitor has the port open before the firmware starts
    proc = subprocess.Popen([str(linux_firmware.elf)], stdin=master, stdout=master, stderr=subprocess.STDOUT,
                            env=_env({"RTFLASH_SETTINGS_FILE": str(settings)}), cwd=tmp_path)
    os.close(master)
    try:
        out, err = monitor.communicate(timeout=30)
    finally:
        proc.terminate()
        proc.wait(5)
        os.close(slave)
    shown = out.decode(errors="replace") + err.decode(errors="replace")
    assert "Improv Wi-Fi serial on the console (provisioned)" in shown, shown
    assert log.is_file() and "Improv Wi-Fi serial on the console (provisioned)" in log.read_text(errors="replace")
    assert PASSWORD.encode() not in log.read_bytes() and PASSWORD not in shown


def _expect(sock: socket.socket, reader: improv.Reader, want, timeout: float = 5.0) -> list[improv.Packet]:
    """Read packets until `want(packets)` is true."""
    got: list[improv.Packet] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.1)
        if ready:
            data = sock.recv(4096)
            assert data, "the firmware went away"
            got += reader.feed(data)
            if want(got):
                return got
    raise AssertionError(f"no answer in time; got {got}")


def _error(code: int):
    return lambda got: any(p.kind == improv.ERROR_STATE and p.value == code for p in got)


def _provisioned(got) -> bool:
    return any(p.kind == improv.RPC_RESULT and p.data[:1] == b"\x01" for p in got) and any(
        p.kind == improv.CURRENT_STATE and p.value == improv.PROVISIONED for p in got)


def test_bad_packets_each_get_the_error_state_and_the_firmware_keeps_going(linux_firmware, rtflash_exe,
                                                                          tmp_path: Path):
    settings = tmp_path / "settings"
    fw = SocketFirmware(linux_firmware.elf, settings)
    try:
        sock = socket.create_connection(("127.0.0.1", int(fw.url.rsplit(":", 1)[1])), timeout=5)
        reader = improv.Reader()
        sock.sendall(improv.rpc(improv.CMD_CURRENT_STATE))
        _expect(sock, reader, lambda got: any(p.kind == improv.CURRENT_STATE and p.value == 2 for p in got), 15)

        good = improv.wifi_settings(SSID, PASSWORD)
        wrong_sum = bytearray(good)
        wrong_sum[-2] ^= 0x5A
        wrong_len = improv.packet(improv.RPC, bytes([improv.CMD_CURRENT_STATE, 3, 0]))
        ssid_0 = improv.rpc(improv.CMD_WIFI_SETTINGS, bytes([0, len(PASSWORD)]) + PASSWORD.encode())
        ssid_255 = improv.rpc(improv.CMD_WIFI_SETTINGS, bytes([255]) + b"s" * 252)
        cases = [("wrong checksum", bytes(wrong_sum), 0x01), ("wrong length", wrong_len, 0x01),
                 ("unknown RPC", improv.rpc(0x42), 0x02), ("0-byte SSID", ssid_0, 0x01),
                 ("255-byte SSID", ssid_255, 0x01), ("short WPA2 password", improv.wifi_settings(SSID, "short"), 0x01)]
        for name, data, code in cases:
            sock.sendall(data)
            _expect(sock, reader, _error(code))
            sock.sendall(improv.rpc(improv.CMD_CURRENT_STATE))  # clears the error state: each case on its own
            _expect(sock, reader, _error(0))

        sock.sendall(good[:20])  # half a packet, then silence: dropped after 2 s with INVALID_RPC
        _expect(sock, reader, _error(0x01), timeout=6)
        assert not settings.exists()

        for i in range(0, len(good), 5):  # split across writes
            sock.sendall(good[i:i + 5])
            time.sleep(0.05)
        _expect(sock, reader, _provisioned)
        for byte in good:  # byte by byte
            sock.sendall(bytes([byte]))
            time.sleep(0.002)
        _expect(sock, reader, _provisioned)
        sock.close()

        # provision --improv over socket:// too, the port's other kind
        result = run(rtflash_exe, "provision", "--improv", "--port", fw.url, "--wifi-ssid", "Office", cwd=tmp_path,
                     env={"RTFLASH_WIFI_PASSWORD": PASSWORD})
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == f"{fw.url}: state: provisioned"  # it already was
        assert f"{fw.url}: Wi-Fi set: provisioned" in result.stdout
        assert fw.proc.poll() is None  # no crash through all of it
    finally:
        fw.stop()
    assert _read_settings(settings) == {"wifi_ssid": "Office", "wifi_pass": PASSWORD}
    console = bytes(fw.output)
    assert b"improv: error: invalid RPC packet" in console and b"improv: error: unknown RPC command" in console
    assert PASSWORD.encode() not in console  # the firmware's whole console: log and Improv answers


def test_provision_improv_with_no_improv_peer_is_one_line(rtflash_exe, tmp_path: Path):
    """Something on the port that never answers Improv: one line naming the port, exit 1, no traceback."""
    server = socket.create_server(("127.0.0.1", 0))
    url = f"socket://127.0.0.1:{server.getsockname()[1]}"
    held = []  # the connection stays open and silent
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    try:
        result = run(rtflash_exe, "provision", "--improv", "--port", url, "--wifi-ssid", SSID, cwd=tmp_path,
                     env={"RTFLASH_WIFI_PASSWORD": PASSWORD}, timeout=30)
    finally:
        server.close()
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"no Improv answer from {url}" in errors[0]
    bad = run(rtflash_exe, "provision", "--improv", "--port", url, "--api-key", "sk-" + "x" * 40, cwd=tmp_path)
    assert bad.returncode == 2 and "--improv sets Wi-Fi only" in bad.stderr
    encrypted = run(rtflash_exe, "provision", "--improv", "--encrypt", "--port", url, cwd=tmp_path)
    assert encrypted.returncode == 2 and "--improv cannot go with --encrypt" in encrypted.stderr
