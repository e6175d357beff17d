"""The firmware's host suite: configure, build and run firmware-src/host-tests with CMake and ctest.

No ESP32 toolchain is needed: the hardware-free C (ring buffer, framer, back-off, SDP and event
JSON, config, HTTP, WAV, Opus round trip with Debian's libopus) is built with the host gcc under
-Wall -Wextra -Werror. The signalling client is then driven against a real HTTP server on 127.0.0.1
that checks method, path, headers and body, as the Realtime API's calls endpoint would.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from testkit.shared import need_installed

REPO = Path(__file__).resolve().parent.parent
HOST_TESTS = REPO / "firmware-src" / "host-tests"
API_KEY = "sk-" + "canary-host-0123456789abcdef"
MODEL = "gpt-realtime"

OFFER = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=ice-ufrag:offr\r\n"
         "a=ice-pwd:offerpassword0123456789\r\na=fingerprint:sha-256 11:22\r\na=setup:actpass\r\n"
         "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\n")
# The server answers with bare LF line endings on purpose: the client must hand libpeer CRLF.
ANSWER = ("v=0\no=- 2 2 IN IP4 127.0.0.1\ns=-\nt=0 0\nm=audio 3478 UDP/TLS/RTP/SAVPF 111\n"
          "a=rtpmap:111 opus/48000/2\na=ice-ufrag:answ\na=ice-pwd:answerpassword012345678\n"
          "a=fingerprint:sha-256 AA:BB\na=setup:active\nm=application 3478 UDP/DTLS/SCTP webrtc-datachannel\n")


def _tool(name: str) -> str | None:
    return shutil.which(name)


@pytest.fixture(scope="module")
def host_build(tmp_path_factory) -> Path:
    """Configure and build the host suite once per run (Ninja when present, else Make)."""
    if not _tool("cmake"):
        pytest.skip("cmake is not installed (.ci/run installs it with apt: cmake ninja-build libopus-dev)")
    build = tmp_path_factory.mktemp("fw-host-build")
    generator = ["-G", "Ninja"] if _tool("ninja") else []
    configure = subprocess.run(["cmake", "-S", str(HOST_TESTS), "-B", str(build), *generator],
                               capture_output=True, text=True, timeout=300)
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compiled = subprocess.run(["cmake", "--build", str(build), "--parallel", "2"],
                              capture_output=True, text=True, timeout=600)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    assert "warning:" not in compiled.stdout + compiled.stderr
    return build


def test_ctest_suite_passes(host_build: Path):
    result = subprocess.run(["ctest", "--test-dir", str(host_build), "--output-on-failure"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "100% tests passed" in result.stdout
    names = {"ring", "audio_frame", "backoff", "events", "sdp", "config", "http", "wav", "link", "fingerprint", "logcap",
             "opus", "improv"}
    for name in names:
        assert f" {name} " in result.stdout, f"ctest did not run {name}"


def test_improv_parser_fuzz_is_valgrind_clean(host_build: Path):
    """The Improv serial parser and its fuzz test under valgrind memcheck (CMake defines the test when
    valgrind is installed; .ci/run installs it)."""
    need_installed(_tool("valgrind") is not None, "valgrind not installed (apt-get install valgrind)")
    result = subprocess.run(["ctest", "--test-dir", str(host_build), "-R", "^improv_valgrind$", "--output-on-failure"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "improv_valgrind" in result.stdout and "100% tests passed" in result.stdout


class _CallsEndpoint(http.server.BaseHTTPRequestHandler):
    """A stand-in for POST /v1/realtime/calls that records and checks what the firmware sent."""

    seen: list[dict] = []
    status = 201
    body = ANSWER
    chunked = False

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", "0"))
        record = {"method": "POST", "path": self.path, "headers": dict(self.headers.items()),
                  "body": self.rfile.read(length).decode()}
        type(self).seen.append(record)
        payload = self.body.encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/sdp" if self.status == 201 else "application/json")
        if self.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(payload) // 2
            for part in (payload[:half], payload[half:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    def do_GET(self):  # noqa: N802
        type(self).seen.append({"method": "GET", "path": self.path})
        self.send_error(405)

    def log_message(self, *args):
        pass


@pytest.fixture
def calls_server():
    """An HTTP server on 127.0.0.1 (an ephemeral port), stopped after the test."""
    handler = type("Handler", (_CallsEndpoint,), {"seen": [], "status": 201, "body": ANSWER, "chunked": False})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


def _post(host_build: Path, url: str, tmp_path: Path, key: str = API_KEY) -> subprocess.CompletedProcess:
    offer = tmp_path / "offer.sdp"
    offer.write_text(OFFER, newline="")
    done = subprocess.run([str(host_build / "rt_post_offer"), url, str(offer)], capture_output=True,
                          timeout=30, env={**os.environ, "RT_API_KEY": key})
    # bytes, decoded by hand: text mode would turn the CRLFs we check for into LFs
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def _url(server, model: str = MODEL) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/v1/realtime/calls?model={model}"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_signalling_post_against_local_server(host_build, calls_server, tmp_path, chunked):
    server, handler = calls_server
    handler.chunked = chunked
    result = _post(host_build, _url(server), tmp_path)
    assert result.returncode == 0, result.stderr
    # server side: exactly what the Realtime API expects
    assert len(handler.seen) == 1
    request = handler.seen[0]
    assert request["method"] == "POST"
    assert request["path"] == f"/v1/realtime/calls?model={MODEL}"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert request["headers"]["Content-Type"] == "application/sdp"
    assert request["headers"]["Host"] == f"127.0.0.1:{server.server_address[1]}"
    assert request["body"] == OFFER
    # client side: the answer, every line CRLF-terminated for libpeer
    assert result.stdout == ANSWER.replace("\n", "\r\n")
    assert API_KEY not in result.stdout + result.stderr


def test_signalling_http_error_is_reported_without_the_key(host_build, calls_server, tmp_path):
    server, handler = calls_server
    handler.status = 401
    handler.body = '{"error":{"message":"Incorrect API key provided: sk-canar************cdef."}}'
    result = _post(host_build, _url(server), tmp_path)
    assert result.returncode == 1
    assert "status 401" in result.stderr and "API key rejected" in result.stderr
    assert "sk-canar" not in result.stderr and "cdef" not in result.stderr


def test_signalling_rejects_a_non_sdp_answer(host_build, calls_server, tmp_path):
    server, handler = calls_server
    handler.body = "<html>captive portal</html>"
    result = _post(host_build, _url(server), tmp_path)
    assert result.returncode == 1
    assert "not an SDP" in result.stderr and result.stdout == ""


def test_signalling_connection_refused_and_https_refused(host_build, tmp_path):
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = _post(host_build, f"http://127.0.0.1:{port}/v1/realtime/calls?model=m", tmp_path)
    assert refused.returncode == 1 and "cannot connect" in refused.stderr
    tls = _post(host_build, "https://127.0.0.1:1/v1/realtime/calls?model=m", tmp_path)
    assert tls.returncode == 1 and "https needs the ESP-IDF transport" in tls.stderr
