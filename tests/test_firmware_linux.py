"""The real linux firmware as a process: unpredictable ICE credentials and SDP session ids (libpeer
patched at build time to use getrandom), SIGTERM always ending it, and one log line of ours per
failed connect (ESP-IDF's esp-tls/HTTP client lines only at DEBUG). Loopback only: the firmware
posts its offer to a TLS server on 127.0.0.1 that records it and refuses the call."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from testkit import realtime_standin as rs

KEY = "sk-linux-canary-" + "Zx9" * 8


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> rs.Pki:
    return rs.make_pki(tmp_path_factory.mktemp("pki"))


class OfferSink:
    """A TLS server on 127.0.0.1 that reads each POSTed SDP offer and answers 503 (no call made)."""

    def __init__(self, pki: rs.Pki) -> None:
        self.ctx = pki.server_context()
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.offers: list[str] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1/realtime/calls"

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                head, body = data.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                while len(body) < length:
                    body += tls.recv(4096)
                with self.lock:
                    self.offers.append(body.decode())
                tls.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except (OSError, ssl.SSLError, AttributeError):
            return

    def close(self) -> None:
        self.done.set()
        self.thread.join(5)
        self.sock.close()


def firmware_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "OPENAI_", "RT_WAV"))}
    return {**base, "OPENAI_API_KEY": KEY, "RTFLASH_ICE_IFACE": "lo", **extra}


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(5)


def test_50_launches_in_one_second_give_50_distinct_ice_credentials_and_session_ids(linux_firmware, pki,
                                                                                     tmp_path):
    """Upstream libpeer seeds rand() with time(NULL) and sends a constant o= id: every device booted
    in the same second offered the same ufrag/pwd. Now each launch draws its own from getrandom."""
    sink = OfferSink(pki)
    procs = []
    try:
        env = firmware_env(RTFLASH_API_URL=sink.url, RTFLASH_CA_FILE=str(pki.ca_file))
        started = time.monotonic()
        for _ in range(50):
            procs.append(subprocess.Popen([str(linux_firmware.elf)], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, cwd=tmp_path))
        launched = time.monotonic() - started
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sink.lock:
                if len(sink.offers) >= 50:
                    break
            time.sleep(0.1)
    finally:
        for p in procs:
            stop(p)
        sink.close()
    assert launched < 1.0, f"50 launches took {launched:.2f} s: not within one second"
    offers = sink.offers[:50]
    assert len(offers) == 50, f"only {len(offers)} offers arrived"
    ufrags = [re.search(r"a=ice-ufrag:(\S+)", o).group(1) for o in offers]
    pwds = [re.search(r"a=ice-pwd:(\S+)", o).group(1) for o in offers]
    origins = [re.search(r"^o=- (\d+) (\d+) IN IP4", o, re.MULTILINE) for o in offers]
    assert all(origins), offers[0]
    ids = [m.group(1) for m in origins]
    print(f"50 launches in {launched * 1000:.0f} ms: {len(set(ufrags))} ufrags, {len(set(pwds))} pwds, "
          f"{len(set(ids))} session ids distinct")
    assert len(set(zip(ufrags, pwds))) == 50
    assert len(set(pwds)) == 50 and len(set(ids)) == 50
    assert len(set(ufrags)) >= 49   # 4 characters of 62: a repeat among 50 is a 1-in-12,000 chance
    assert all(len(p) == 24 and p.isalnum() for p in pwds) and all(len(u) == 4 and u.isalnum() for u in ufrags)
    assert all(0 < int(i) < 2 ** 63 for i in ids)
    assert "1495799811084970" not in "".join(ids)   # upstream's constant


def test_sigterm_ends_the_firmware_within_2_s_every_time(linux_firmware, pki, tmp_path):
    """20 runs, the signal landing at spread moments: boot, offer, refusal, back-off."""
    sink = OfferSink(pki)
    times = []
    try:
        env = firmware_env(RTFLASH_API_URL=sink.url, RTFLASH_CA_FILE=str(pki.ca_file))
        for run in range(20):
            proc = subprocess.Popen([str(linux_firmware.elf)], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=tmp_path)
            try:
                time.sleep(0.075 * run)
                sent = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(2)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"run {run}: still running 2 s after SIGTERM (sent {0.075 * run:.2f} s after launch)")
                times.append(time.monotonic() - sent)
                assert code == -signal.SIGTERM, f"run {run}: exit {code}"
            finally:
                stop(proc)
    finally:
        sink.close()
    print(f"SIGTERM -> exit: max {max(times) * 1000:.0f} ms over {len(times)} runs")
    assert len(times) == 20


def test_a_failed_connect_is_one_line_of_ours(linux_firmware, tmp_path):
    """A refused port: esp-tls, transport_base and HTTP_CLIENT used to log 4 E lines per attempt."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()   # nothing listens there now
    log_path = tmp_path / "fw.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(linux_firmware.elf)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                                env=firmware_env(RTFLASH_API_URL=f"https://127.0.0.1:{port}/v1/realtime/calls"))
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and log_path.read_text(errors="replace").count("signalling failed") < 2:
                time.sleep(0.1)
        finally:
            stop(proc)
    text = log_path.read_text(errors="replace")
    errors = [ln for ln in text.splitlines() if ln.startswith("E (")]
    attempts = text.count("sending the SDP offer")
    assert text.count("signalling failed") >= 2, text[-2000:]
    assert all(" rt_session: signalling failed: cannot connect" in ln for ln in errors), "\n".join(errors)
    assert len(errors) <= attempts, "\n".join(errors)
    assert not re.search(r"^E \(\d+\) (esp-tls|transport_base|HTTP_CLIENT)", text, re.MULTILINE)
    assert KEY not in text and KEY[8:] not in text
