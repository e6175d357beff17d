"""End to end: the real linux firmware (ESP-IDF linux target, libpeer, Opus, mbedTLS) holds a WebRTC
voice session with the Realtime API stand-in (aiortc) on 127.0.0.1. No mocks: the firmware process
reads its mic from a WAV, writes its speaker to a WAV, trusts the test CA through RTFLASH_CA_FILE
(TLS verified) and offers a 127.0.0.1 host candidate through RTFLASH_ICE_IFACE=lo.

The stand-in's WebRTC side is stock aiortc (its ECDSA certificate and cipher list, all three fingerprints
in its answer). The deliberately odd answerers (only sha-384/sha-512 fingerprints, a wrong fingerprint,
ICE then no DTLS) are the extra cases at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from testkit import realtime_standin as rs
from testkit.shared import stop_process

KEY = "sk-e2e-canary-" + "Q7w" * 8
MODEL = "gpt-realtime-e2e"
VOICE = "marin"
INSTRUCTIONS = 'Speak like a "lighthouse keeper".'
RATE = 16000  # CONFIG_RT_AUDIO_SAMPLE_RATE of the linux board


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> rs.Pki:
    return rs.make_pki(tmp_path_factory.mktemp("pki"))


def write_wav(path: Path, pcm: np.ndarray, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def tone16k(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


class Firmware:
    """The linux firmware as a process, its log in a file."""

    def __init__(self, elf: Path, tmp: Path, env: dict[str, str]) -> None:
        self.log_path = tmp / "firmware.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "OPENAI_", "RT_WAV"))}
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(elf)], env={**base, **env}, stdout=self.log_path.open("wb"),
                                     stderr=subprocess.STDOUT, cwd=tmp)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc, 5)


def monitor_statuses(log_path: Path, device_server, cwd: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Serve the firmware's log as a device prints it (line by line, the session's lines 50 ms apart) on a
    socket to the installed `rtflash monitor --json`; its run and its status rows."""
    def device(conn) -> None:
        for raw in log_path.read_bytes().splitlines(keepends=True):
            conn.sendall(raw)
            if b"rt_session:" in raw:
                time.sleep(0.05)

    server = device_server(device)
    monitor = subprocess.run([str(Path(sys.executable).parent / "rtflash"), "monitor", "--port", server.url,
                              "--no-reconnect", "--json"], capture_output=True, text=True, timeout=60,
                             cwd=cwd, env={k: v for k, v in os.environ.items() if not k.startswith("RTFLASH_")})
    return monitor, [row for row in map(json.loads, monitor.stdout.splitlines()) if row["type"] == "status"]


def firmware_env(server: rs.StandInThread, ca_file: Path, **extra: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": KEY, "RTFLASH_API_URL": server.standin.calls_url, "RTFLASH_CA_FILE": str(ca_file),
            "RTFLASH_ICE_IFACE": "lo", "RTFLASH_MODEL": MODEL, "RTFLASH_VOICE": VOICE,
            "RTFLASH_INSTRUCTIONS": INSTRUCTIONS, **extra}


def test_firmware_holds_a_voice_session(linux_firmware, pki: rs.Pki, tmp_path: Path, device_server) -> None:
    mic = write_wav(tmp_path / "mic.wav", tone16k(1000.0, 6.0))
    speaker = tmp_path / "speaker.wav"
    with rs.StandInThread(pki, KEY, play="tone", tone_hz=440.0) as server:
        fw = Firmware(linux_firmware.elf, tmp_path,
                      firmware_env(server, pki.ca_file, RT_WAV_IN=str(mic), RT_WAV_OUT=str(speaker)))
        try:
            calls = server.standin.calls
            assert server.wait_until(lambda: calls and calls[0].connected_at() is not None, 15), fw.log()
            call = calls[0]
            assert server.wait_until(lambda: call.received.seconds() >= 2.5 and "response.done" in fw.log(), 10), \
                fw.log()
            alive = fw.proc.poll() is None
        finally:
            fw.stop()
    log = fw.log()
    assert alive, log
    launch_to_connected = call.connected_at() - fw.started
    first_rtp = call.rtp[0].arrival - fw.started if call.rtp else float("nan")
    print(f"launch -> connected {launch_to_connected * 1000:.0f} ms, -> first RTP at the stand-in "
          f"{first_rtp * 1000:.0f} ms")
    assert launch_to_connected < 10
    # signalling: HTTPS verified with the test CA, the API's request shape, only Bearer on the wire
    request = server.standin.requests[0]
    assert request.path_qs == f"/v1/realtime/calls?model={MODEL}"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/sdp"
    assert KEY not in log and KEY[6:] not in log  # the canary rule
    # loopback only: the firmware's offer and the stand-in's answer carry 127.0.0.1 candidates only
    rs.assert_loopback_sdp(call.offer, "firmware offer")
    rs.assert_loopback_sdp(call.answer, "stand-in answer")
    assert call.dropped_candidates == []
    # ICE, then DTLS + SRTP (only then CONNECTED), then SCTP: the data channel open
    order = [log.index(line) for line in ("peer state: ICE_CONNECTED", "peer state: CONNECTED",
                                          "datachannel open: oai-events")]
    assert order == sorted(order), log
    assert call.channel_open is not None
    # stock aiortc's answer lists sha-256, sha-384 and sha-512 in each media section; taken as it is
    fingerprints = [ln.split()[0] for ln in rs.fingerprint_lines(call.answer)]
    assert fingerprints[:3] == ["a=fingerprint:sha-256", "a=fingerprint:sha-384", "a=fingerprint:sha-512"]
    # its DTLS identity: ECDSA P-256, made once for this boot; the offer's fingerprint is that certificate's
    ident = next(ln for ln in log.splitlines() if "DTLS identity: ECDSA P-256" in ln)
    assert ident.rsplit("sha-256 ", 1)[1].strip() in call.offer and log.count("DTLS identity:") == 1
    assert "FAILED" not in log and "log cap" not in log
    # the firmware's session.update: valid JSON with the configured model, voice and instructions
    update = next(e for e in call.events_in if e.get("type") == "session.update")
    assert update["session"]["type"] == "realtime" and update["session"]["model"] == MODEL
    assert update["session"]["instructions"] == INSTRUCTIONS
    assert update["session"]["audio"]["output"]["voice"] == VOICE
    assert call.bad_messages == []
    # the stand-in's events are parsed and logged by the firmware
    for kind in ("session.created", "session.updated", "response.created", "response.done"):
        assert f"event: {kind}" in log
    # audio up: what the stand-in decodes from the firmware's Opus is the mic's 1 kHz tone
    up = call.received.pcm()[rs.RATE // 2 :]
    assert rs.rms(up) > 1000
    assert abs(rs.dominant_frequency(up) - 1000.0) / 1000.0 < 0.02
    # RTP headers: version 2, the negotiated payload type, +1 sequence, +20 ms (960 at 48 kHz) timestamps
    pt = rs.negotiated_payload_type(call.answer)
    assert pt is not None and len(call.rtp) >= 100
    assert rs.rtp_problems(call.rtp, pt) == []
    # audio down: the firmware's speaker WAV holds the stand-in's 440 Hz tone
    pcm, rate = read_wav(speaker)
    assert rate == RATE and len(pcm) >= RATE
    loud = pcm[np.abs(pcm.astype(np.int32)) > 0]
    tail = pcm[-RATE:] if len(loud) else pcm
    assert rs.rms(tail) > 1000
    assert abs(rs.dominant_frequency(tail, RATE) - 440.0) / 440.0 < 0.02
    # the monitor's status line follows the session from the firmware's own output, served as a device
    # prints it on a socket to the installed monitor
    monitor, statuses = monitor_statuses(fw.log_path, device_server, tmp_path)
    assert statuses, monitor.stdout[-2000:] + monitor.stderr
    seen_events = {row.get("last_event") for row in statuses}
    assert {"session.created", "session.updated", "response.done"} <= seen_events, seen_events
    assert any(row.get("peer") == "ICE_CONNECTED" for row in statuses), statuses
    assert any(row.get("peer") == "CONNECTED" and row.get("datachannel") == "oai-events open"
               for row in statuses), statuses[-1]
    assert statuses[-1]["events"] == log.count("rt_session: event: ")
    assert "| event response" in " ".join(row["summary"] for row in statuses)
    assert KEY not in monitor.stdout and KEY not in monitor.stderr


@pytest.mark.parametrize("case", ["other-ca", "other-host"])
def test_tls_refuses_a_wrong_certificate(linux_firmware, pki: rs.Pki, tmp_path: Path, case: str) -> None:
    if case == "other-ca":
        served, expected = rs.make_pki(tmp_path / "other-ca"), "not signed by a trusted CA"
    else:
        served, expected = rs.make_pki(tmp_path / "host", hosts=("example.invalid",), ca=pki), "for another host"
    with rs.StandInThread(served, KEY) as server:
        fw = Firmware(linux_firmware.elf, tmp_path, firmware_env(server, pki.ca_file))
        try:
            assert server.wait_until(lambda: expected in fw.log(), 10), fw.log()
            time.sleep(0.5)
            alive = fw.proc.poll() is None
        finally:
            fw.stop()
        assert server.standin.requests == [] and server.standin.calls == []  # no request, so no media
    log = fw.log()
    assert alive and f"signalling failed: TLS refused: the server's certificate is {expected}" in log
    assert "peer state: CONNECTED" not in log and KEY not in log


@pytest.mark.parametrize(("mode", "line", "within"), [
    ("unauthorized", "signalling failed: HTTP 401 (API key rejected)", 5),
    ("not_sdp", "signalling failed: HTTP 201 but the answer is unusable", 5),
    ("close_mid_body", "signalling failed: the server closed the connection mid-answer (HTTP 201, 43 of 172 bytes)", 5),
    # the firmware's HTTP timeout is 15 s (SIGNAL_TIMEOUT_MS); the stand-in sleeps 30 s before answering
    ("slow", "signalling failed: no HTTP answer within 15 s (server too slow)", 20),
])
def test_signalling_faults_are_one_clear_line_and_back_off(linux_firmware, pki: rs.Pki, tmp_path: Path,
                                                          mode: str, line: str, within: float) -> None:
    with rs.StandInThread(pki, KEY, mode=mode) as server:
        fw = Firmware(linux_firmware.elf, tmp_path, firmware_env(server, pki.ca_file))
        try:
            assert server.wait_until(lambda: line in fw.log(), within), fw.log()
            time.sleep(3.0)
            alive = fw.proc.poll() is None
            posts = len(server.standin.requests)
        finally:
            fw.stop()
    log = fw.log()
    assert alive, log
    assert 1 <= posts <= 4, f"{posts} POSTs in ~3 s: no back-off"
    assert "reconnecting in" in log and KEY not in log
    if mode == "unauthorized":  # a rejected key: one line, then a long hold (no retry storm)
        assert posts == 1 and log.count("signalling failed:") == 1, log
        assert "next try in 30 min" in log and "reconnecting in 1800000 ms" in log
    assert "peer state: CONNECTED" not in log


def test_rtflash_exec_points_the_firmware_at_a_stand_in(linux_firmware, pki: rs.Pki, tmp_path: Path) -> None:
    """The installed `rtflash exec --api-url --ca-file --mic --speaker-out` runs the built firmware against
    the stand-in: the call connects, the mic WAV goes up, the speaker WAV fills (its own process group, so
    the firmware under rtflash is stopped with it)."""
    import signal
    import sys

    exe = Path(sys.executable).parent / "rtflash"
    mic = write_wav(tmp_path / "mic.wav", tone16k(1000.0, 4.0))
    speaker = tmp_path / "out" / "speaker.wav"
    speaker.parent.mkdir()
    env = {k: v for k, v in linux_firmware.env.items() if not k.startswith(("RTFLASH_API", "RTFLASH_CA", "RT_WAV"))}
    env["OPENAI_API_KEY"] = KEY
    log_path = tmp_path / "exec.log"
    with rs.StandInThread(pki, KEY, play="tone", tone_hz=440.0) as server:
        proc = subprocess.Popen([str(exe), "exec", "--api-url", server.standin.calls_url, "--ca-file", str(pki.ca_file),
                                 "--mic", str(mic), "--speaker-out", str(speaker)], cwd=linux_firmware.project,
                                env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        try:
            calls = server.standin.calls
            assert server.wait_until(lambda: calls and calls[0].received.seconds() >= 2.0, 20), log_path.read_text()
            call = calls[0]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    log = log_path.read_text(errors="replace")
    assert "datachannel open: oai-events" in log and KEY not in log
    rs.assert_loopback_sdp(call.offer, "firmware offer under rtflash exec")
    assert abs(rs.dominant_frequency(call.received.pcm()[rs.RATE // 2 :]) - 1000.0) < 20
    pcm, rate = read_wav(speaker)
    assert rate == RATE and len(pcm) >= RATE and abs(rs.dominant_frequency(pcm[-RATE:], RATE) - 440.0) < 8.8


@pytest.mark.parametrize(("argv", "expected"), [
    (["--api-url", "http://127.0.0.1:9/v1/realtime/calls"],
     "--api-url http://127.0.0.1:9/v1/realtime/calls: not an https:// URL"),
    (["--ca-file", "missing.pem"], "--ca-file missing.pem: cannot read it"),
    (["--mic", "mic8k.wav"], "the firmware needs 16-bit mono or stereo at 16000 Hz"),
    (["--speaker-out", "nowhere/out.wav"], "--speaker-out nowhere/out.wav: folder nowhere does not exist"),
])
def test_rtflash_exec_refuses_bad_options_in_one_line(linux_firmware, tmp_path: Path, argv: list[str],
                                                      expected: str) -> None:
    import sys

    write_wav(tmp_path / "mic8k.wav", tone16k(440.0, 0.5), rate=8000)
    env = {**linux_firmware.env, "OPENAI_API_KEY": KEY,
           "RTFLASH_CACHE_DIR": str(linux_firmware.project / ".device-cache")}
    done = subprocess.run([str(Path(sys.executable).parent / "rtflash"), "-C", str(linux_firmware.project), "exec", *argv],
                          cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in done.stderr, done.stderr


def test_stand_in_killed_mid_call_then_back_firmware_reconnects(linux_firmware, tmp_path: Path) -> None:
    """The stand-in runs as its own process and is SIGKILLed mid-call (no goodbye on any layer); the
    firmware notices, logs it, backs off (no tight loop, same process) and, once a stand-in listens
    on the same port again, holds a new call."""
    import signal
    import sys

    pki_dir = tmp_path / "pki"
    pki = rs.make_pki(pki_dir)
    standin = subprocess.Popen([sys.executable, "-m", "testkit.realtime_standin", "--pki-dir", str(pki_dir)],
                               cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "RTFLASH_STANDIN_KEY": KEY},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = standin.stdout.readline().strip()  # "listening https://127.0.0.1:PORT/v1"
        assert first.startswith("listening https://127.0.0.1:"), first
        base = first.split()[1]
        port = int(base.rsplit(":", 1)[1].split("/")[0])
        env = {"OPENAI_API_KEY": KEY, "RTFLASH_API_URL": f"{base}/realtime/calls", "RTFLASH_CA_FILE": str(pki.ca_file),
               "RTFLASH_ICE_IFACE": "lo", "RTFLASH_MODEL": MODEL}
        fw = Firmware(linux_firmware.elf, tmp_path, env)
        deadline = time.monotonic() + 15
        while "event: response.done" not in fw.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "event: response.done" in fw.log(), fw.log()
        killed = time.monotonic()
        standin.send_signal(signal.SIGKILL)
        standin.wait(5)
    finally:
        if standin.poll() is None:
            standin.kill()
            standin.wait(5)
    # down: the firmware notices (ICE consent stops: libpeer's 10 s binding-request timeout), then its
    # offers fail (nothing listens) with growing delays; after two failures the stand-in comes back
    deadline = time.monotonic() + 30
    while fw.log().count("signalling failed:") < 2 and time.monotonic() < deadline and fw.proc.poll() is None:
        time.sleep(0.05)
    down_log = fw.log()
    try:
        assert down_log.count("signalling failed:") >= 2, down_log
        with rs.StandInThread(rs.make_pki(pki_dir, ca=rs.existing_ca(pki_dir)), KEY, port=port) as server:
            back = time.monotonic()
            calls = server.standin.calls
            assert server.wait_until(lambda: calls and calls[0].connected_at() is not None and
                                     calls[0].channel_open is not None, 40), fw.log()
            reconnected = calls[0].connected_at()
            assert server.wait_until(lambda: fw.log().count("event: response.done") >= 2, 10), fw.log()
            alive = fw.proc.poll() is None
            posts = len(server.standin.requests)
    finally:
        fw.stop()
    log = fw.log()
    print(f"killed -> reconnected {reconnected - killed:.1f} s (stand-in back after {back - killed:.1f} s)")
    assert alive, log  # the same process: no restart
    lost = log[log.index("event: response.done"):]
    assert "peer state: CLOSED: nothing from the peer for 10 s" in lost and "session ended; reconnecting in" in lost, log
    # one DTLS identity for the boot: the second call offers the same certificate as the first
    assert log.count("DTLS identity: ECDSA P-256") == 1
    assert log.rsplit("DTLS identity:", 1)[1].split("sha-256 ", 1)[1].split()[0] in calls[0].offer
    # backed off while nothing listened: each failure one line, the delays growing (no tight loop)
    failures = [ln for ln in lost.splitlines() if "signalling failed:" in ln]
    assert 2 <= len(failures) <= 6 and all("cannot connect" in ln for ln in failures), failures
    delays = [int(ln.rsplit("reconnecting in ", 1)[1].split()[0]) for ln in lost.splitlines() if "reconnecting in" in ln]
    assert delays[0] >= 500 and delays[1:3] == sorted(delays[1:3]) and delays[2] > delays[0], delays
    assert posts == 1 and log.count("datachannel open: oai-events") == 2
    assert KEY not in log


# --- odd answerers: explicit extra cases (testkit/realtime_standin.py PEERS) ---------------------------------


def session_lines(log: str) -> list[str]:
    """What the session printed: rt_session's and libpeer's lines (both under the log cap)."""
    return [ln for ln in log.splitlines() if " rt_session: " in ln or " libpeer: " in ln]


def test_strict_answerer_with_only_sha384_and_sha512(linux_firmware, pki: rs.Pki, tmp_path: Path) -> None:
    """A peer whose answer lists no sha-256 fingerprint: the firmware verifies against sha-512 and talks."""
    mic = write_wav(tmp_path / "mic.wav", tone16k(1000.0, 5.0))
    with rs.StandInThread(pki, KEY, play="tone", peer="sha384_512_only") as server:
        fw = Firmware(linux_firmware.elf, tmp_path, firmware_env(server, pki.ca_file, RT_WAV_IN=str(mic)))
        try:
            calls = server.standin.calls
            assert server.wait_until(lambda: calls and calls[0].received.seconds() >= 2.0
                                     and calls[0].channel_open is not None, 15), fw.log()
            call = calls[0]
        finally:
            fw.stop()
    log = fw.log()
    assert {ln.split()[0] for ln in rs.fingerprint_lines(call.answer)} == {"a=fingerprint:sha-384",
                                                                           "a=fingerprint:sha-512"}
    assert "peer state: CONNECTED" in log and "datachannel open: oai-events" in log and "FAILED" not in log
    up = call.received.pcm()[rs.RATE // 2 :]
    assert abs(rs.dominant_frequency(up) - 1000.0) / 1000.0 < 0.02
    assert len(server.standin.calls) == 1


def test_wrong_fingerprint_is_refused_in_one_line_then_a_fresh_offer(linux_firmware, pki: rs.Pki,
                                                                    tmp_path: Path) -> None:
    """The answer's fingerprints are another certificate's: refused in one line naming the hash and both
    values, the peer closed, a fresh offer within the back-off (first delay 0.5-1 s); never CONNECTED."""
    with rs.StandInThread(pki, KEY, peer="wrong_fingerprint") as server:
        fw = Firmware(linux_firmware.elf, tmp_path, firmware_env(server, pki.ca_file))
        try:
            calls = server.standin.calls
            assert server.wait_until(lambda: len(calls) >= 2, 15), fw.log()
            assert server.wait_until(lambda: fw.log().count("fingerprint mismatch") >= 2, 10), fw.log()
            first, second = calls[0], calls[1]
            actual = [f for f in first.pc.getTransceivers()[0].sender.transport.getLocalParameters().fingerprints
                      if f.algorithm == "sha-512"][0].value
            alive = fw.proc.poll() is None
        finally:
            fw.stop()
    log = fw.log()
    assert alive, log
    claimed = next(ln for ln in rs.fingerprint_lines(first.answer) if ln.startswith("a=fingerprint:sha-512 ")).split()[1]
    refusals = [ln for ln in log.splitlines() if "fingerprint mismatch" in ln]
    assert refusals[0].count("\n") == 0 and "rt_session: peer state: FAILED: DTLS refused: fingerprint mismatch (sha-512)" \
        in refusals[0], refusals[0]
    assert f"the answer says {claimed}, the peer's certificate is {actual}" in refusals[0], (refusals[0], claimed, actual)
    # one line per attempt: between two offers, exactly one refusal and nothing else failing
    attempts = log.split("sending the SDP offer")[1:3]
    assert [a.count("fingerprint mismatch") for a in attempts] == [1, 1]
    assert [sum(ln.startswith("E (") for ln in a.splitlines()) for a in attempts] == [1, 1], attempts
    delay = int(log.split("reconnecting in ", 1)[1].split()[0])
    assert 500 <= delay <= 1000
    assert second.created - first.created < delay / 1000 + 3.0
    assert "peer state: CONNECTED" not in log and "datachannel open" not in log
    assert first.channel_open is None and KEY not in log


def test_peer_that_drops_dtls_after_ice(linux_firmware, pki: rs.Pki, tmp_path: Path, device_server) -> None:
    """ICE completes, then the peer never sends DTLS: one line, not connected in the monitor's status, a new
    offer within 10 s; over 60 s of such failures the session (rt_session + libpeer) logs at most 60 lines."""
    with rs.StandInThread(pki, KEY, peer="drop_dtls") as server:
        fw = Firmware(linux_firmware.elf, tmp_path, firmware_env(server, pki.ca_file))
        try:
            calls = server.standin.calls
            assert server.wait_until(lambda: calls, 10), fw.log()
            t0 = time.monotonic()
            assert server.wait_until(lambda: len(calls) >= 2, 12), fw.log()
            back = calls[1].created - calls[0].created
            server.wait_until(lambda: fw.proc.poll() is not None, 60 - (time.monotonic() - t0))
            alive = fw.proc.poll() is None
            dropped = sum(len(c.dtls_dropped) for c in calls)
            attempts = len(calls)
        finally:
            fw.stop()
    log = fw.log()
    assert alive, log
    assert dropped > 0, "the odd peer sent DTLS after all: the case proves nothing"
    assert back < 10, f"new offer {back:.1f} s after the first"
    failures = [ln for ln in log.splitlines() if "peer state: FAILED" in ln]
    assert failures and all("DTLS handshake failed: nothing from the peer for " in ln for ln in failures), failures
    assert len(failures) >= attempts - 1 >= 3, (len(failures), attempts)
    lines = session_lines(log)
    print(f"drop-DTLS peer: {attempts} attempts in 60 s, {len(lines)} session lines, first retry after {back:.1f} s")
    assert len(lines) <= 60, "\n".join(lines)
    assert "peer state: ICE_CONNECTED" in log and "peer state: CONNECTED" not in log
    # the monitor's status line, fed the firmware's output: ICE came up, but the session is not connected
    _monitor, statuses = monitor_statuses(fw.log_path, device_server, tmp_path)
    peers = [row.get("peer") for row in statuses]
    assert "ICE_CONNECTED" in peers and "CONNECTED" not in peers, peers
    last = statuses[-1]
    assert last["peer"] != "CONNECTED" and "webrtc CONNECTED" not in last["summary"], last
