"""A stand-in of OpenAI's Realtime API WebRTC endpoint, on loopback, built on a real WebRTC stack.

Why: the firmware's session code (signalling, ICE, DTLS-SRTP, SCTP data channel, Opus) can only be
proven against a peer that really speaks WebRTC. aiortc is such a peer, in Python, from PyPI.

What it imitates (OpenAI's API reference "Create call",
https://developers.openai.com/api/reference/resources/realtime/subresources/calls/methods/create,
and the WebRTC guide, https://platform.openai.com/docs/guides/realtime-webrtc; summarised in
shared/FACTS.md "The Realtime API over WebRTC today"):

- ``POST /v1/realtime/calls?model=M`` with ``Authorization: Bearer <key>`` and
  ``Content-Type: application/sdp``, the body the SDP offer -> ``201``, body the SDP answer
  (``application/sdp``), the call id in the ``Location`` header (``/v1/realtime/calls/rtc_...``).
- ``POST /v1/realtime/calls/{call_id}/hangup`` with the same Bearer ("Hang up call",
  https://developers.openai.com/api/docs/api-reference/realtime-calls/hangup-call) -> ``200`` (empty
  body; the SDKs return nothing) and that call's peer connection is closed; a call it never had, or one
  already over (hung up, or closed by the client), is ``404``. The 404's message and code are ours:
  the reference documents no error body beyond the API's usual shape.
- Errors are JSON ``{"error": {"message", "type", "code", "param"}}``; a wrong key gets ``401``.
- On the ``oai-events`` data channel it sends ``session.created`` when the channel opens, answers
  ``session.update`` with ``session.updated`` (the merged session), then plays a short model turn as
  ``response.*`` events (also on ``response.create``). Invalid JSON gets an ``error`` event.
- Media: it plays a known signal (a tone, a click, a PCM array, or an echo of what it receives) and
  records what it receives: decoded PCM (48 kHz mono) and every RTP header (after SRTP).

Its WebRTC side is stock aiortc (default settings: its own ECDSA certificate and cipher list, the
sha-256, sha-384 and sha-512 fingerprints it lists): a reference, never bent to the firmware. Deliberately
strict or broken answerers are explicit extra cases (``StandIn.peer``, see ``PEERS``).

Fault modes (``StandIn.mode``, can change between calls): ``"ok"``, ``"unauthorized"`` (401 whatever
the key), ``"not_sdp"`` (201 with an HTML page, as a captive portal would), ``"slow"`` (waits
``slow_seconds`` before answering), ``"close_mid_body"`` (headers promise a body, half comes, then the
connection closes).

Loopback only (shared/FACTS.md "WebRTC tests on loopback only"): ``loopback_only()`` makes aiortc use
no STUN/TURN server and gather only 127.0.0.1; remote candidates that are not 127.0.0.1 (mDNS
``.local`` names included, so no multicast is sent) are dropped from every offer before aiortc sees
them, and every SDP answer is checked to carry only 127.0.0.1 candidates.

The HTTP server is aiohttp: it is asyncio like aiortc, so one event loop runs both the HTTPS endpoint
and the peer connections (no thread hand-offs inside a call); it takes a plain ``ssl.SSLContext`` for
TLS and lets a handler control the raw response (``StreamResponse``), which the mid-body fault needs.

Use from a synchronous test with ``StandInThread`` (its own loop in a thread); ``client_call`` is an
aiortc client of the same endpoint (the reference the firmware is compared with). TLS: ``make_pki``
makes a throw-away CA and a certificate for 127.0.0.1/localhost.
"""

from __future__ import annotations

import asyncio
import datetime
import fractions
import ipaddress
import json
import secrets
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aioice.ice
import numpy as np
from aiohttp import ClientSession, ClientTimeout, web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import RTCCertificate
from aiortc.rtcicetransport import RTCIceGatherer
from av import AudioFrame
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RATE = 48000  # aiortc's Opus runs at 48 kHz
FRAME = 960  # 20 ms
LOOPBACK = "127.0.0.1"
EVENTS_LABEL = "oai-events"
MODES = ("ok", "unauthorized", "not_sdp", "slow", "close_mid_body")


# --- loopback only -------------------------------------------------------------------------------


def loopback_only() -> None:
    """Keep aiortc/aioice on 127.0.0.1: no default STUN server, host candidates 127.0.0.1 only.

    Process-wide and idempotent (the patched functions are module attributes).
    """
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: [LOOPBACK]
    RTCIceGatherer.getDefaultIceServers = classmethod(lambda cls: [])


def new_peer() -> RTCPeerConnection:
    """A stock RTCPeerConnection (aiortc's own DTLS: ECDSA certificate, its cipher list, sha-256/384/512
    fingerprints) with no ICE servers, after loopback_only()."""
    loopback_only()
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


@dataclass(frozen=True)
class Candidate:
    """One `a=candidate` line: what the loopback checks need."""

    line: str
    transport: str
    address: str
    port: int
    typ: str


def sdp_candidates(sdp: str) -> list[Candidate]:
    """The ICE candidates of an SDP (RFC 8839 `a=candidate:` attribute)."""
    out = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if not line.startswith("a=candidate:"):
            continue
        parts = line[len("a=candidate:") :].split()
        typ = parts[parts.index("typ") + 1] if "typ" in parts else ""
        out.append(Candidate(line, parts[2].lower(), parts[4], int(parts[5]), typ))
    return out


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address) == ipaddress.ip_address(LOOPBACK)
    except ValueError:
        return False  # an mDNS name or junk


def strip_non_loopback(sdp: str) -> tuple[str, list[str]]:
    """Drop candidates that are not 127.0.0.1 (so aiortc never sends to them); returns (sdp, dropped)."""
    kept, dropped = [], []
    for raw in sdp.splitlines():
        cand = sdp_candidates(raw)
        if cand and not is_loopback(cand[0].address):
            dropped.append(raw.strip())
            continue
        kept.append(raw)
    return "\r\n".join(kept) + "\r\n", dropped


# --- odd peers: explicit extra cases, never the default -----------------------------------------------
# The stand-in answers as stock aiortc does ("stock"). These answerers are deliberately strict or broken,
# each to prove one behaviour of the firmware:
#   "sha384_512_only"   a strict peer whose answer lists only sha-384 and sha-512 fingerprints
#   "wrong_fingerprint" the answer's fingerprints are another certificate's: the DTLS peer must be refused
#   "drop_dtls"         ICE completes, then the answerer never sends a DTLS packet (silently dropped)
PEERS = ("stock", "sha384_512_only", "wrong_fingerprint", "drop_dtls")


def fingerprint_lines(sdp: str) -> list[str]:
    return [ln for ln in sdp.splitlines() if ln.startswith("a=fingerprint:")]


def only_fingerprints(sdp: str, algorithms: tuple[str, ...]) -> str:
    """`sdp` keeping only the `a=fingerprint` lines of these hash algorithms."""
    lines = [ln for ln in sdp.splitlines()
             if not ln.startswith("a=fingerprint:") or ln[len("a=fingerprint:"):].split(" ")[0].lower() in algorithms]
    return "\r\n".join(lines) + "\r\n"


def foreign_fingerprints(sdp: str) -> str:
    """`sdp` with every fingerprint value replaced by a throw-away certificate's (same algorithms)."""
    other = {f.algorithm: f.value for f in RTCCertificate.generateCertificate().getFingerprints()}
    out = []
    for ln in sdp.splitlines():
        if ln.startswith("a=fingerprint:"):
            alg = ln[len("a=fingerprint:"):].split(" ")[0]
            ln = f"a=fingerprint:{alg} {other[alg.lower()]}"
        out.append(ln)
    return "\r\n".join(out) + "\r\n"


def drop_dtls(pc: RTCPeerConnection, dropped: list[int]) -> None:
    """After ICE, send nothing but ICE: every DTLS record this peer would send is dropped (counted)."""
    transports = {t.sender.transport.transport for t in pc.getTransceivers() if t.sender.transport is not None}
    if pc.sctp is not None:
        transports.add(pc.sctp.transport.transport)
    for ice in transports:
        async def send(data: bytes) -> None:
            dropped.append(len(data))

        ice._send = send


def assert_loopback_sdp(sdp: str, who: str = "SDP") -> None:
    """Every candidate of `sdp` is 127.0.0.1, and there is at least one."""
    cands = sdp_candidates(sdp)
    assert cands, f"{who} carries no ICE candidate"
    bad = [c.line for c in cands if not is_loopback(c.address)]
    assert not bad, f"{who} carries non-loopback candidates: {bad}"


# --- TLS: a throw-away CA -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """PEM files: the CA a client trusts, and the server's certificate and key."""

    ca_file: Path
    ca_key_file: Path
    cert_file: Path
    key_file: Path
    hosts: tuple[str, ...]

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Verifies the server against this CA only (hostname checked)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def existing_ca(directory: Path) -> Pki | None:
    """The CA make_pki left in `directory` (to issue more certificates from it), or None."""
    ca_file, ca_key_file = directory / "ca.pem", directory / "ca-key.pem"
    if not (ca_file.exists() and ca_key_file.exists()):
        return None
    return Pki(ca_file, ca_key_file, ca_file, ca_key_file, ())


def make_pki(
    directory: Path,
    hosts: tuple[str, ...] = (LOOPBACK, "localhost"),
    ca: Pki | None = None,
    ca_name: str = "rtflash throw-away test CA",
) -> Pki:
    """A CA (new, or `ca`'s) and a server certificate for `hosts`, written as PEM files in `directory`.

    EC P-256 keys: quick to make, and mbedTLS (the firmware's TLS) verifies them.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)
    if ca is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_subject)
            .issuer_name(ca_subject)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        ca_file, ca_key_file = directory / "ca.pem", directory / "ca-key.pem"
        ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        ca_key_file.write_bytes(_pem_key(ca_key))
    else:
        ca_file, ca_key_file = ca.ca_file, ca.ca_key_file
        ca_cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False  # type: ignore[arg-type]
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    stem = "server-" + "-".join(h.replace(".", "_") for h in hosts)
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(_pem_key(key))
    return Pki(ca_file, ca_key_file, cert_file, key_file, tuple(hosts))


# --- signals ---------------------------------------------------------------------------------------


def tone(freq: float, amplitude: float = 0.3) -> Callable[[int, int], np.ndarray]:
    """A sine source: (first sample, count) -> int16 samples at 48 kHz."""

    def source(start: int, n: int) -> np.ndarray:
        t = (np.arange(start, start + n) / RATE).astype(np.float64)
        return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)

    return source


def pcm_source(samples: np.ndarray, loop: bool = False) -> Callable[[int, int], np.ndarray]:
    """Plays `samples` (int16, 48 kHz) once (then silence) or in a loop."""

    def source(start: int, n: int) -> np.ndarray:
        if loop and len(samples):
            idx = np.arange(start, start + n) % len(samples)
            return samples[idx]
        out = np.zeros(n, np.int16)
        chunk = samples[start : start + n]
        out[: len(chunk)] = chunk
        return out

    return source


def silence(start: int, n: int) -> np.ndarray:
    return np.zeros(n, np.int16)


class EchoSource:
    """Plays back what is pushed into it (the stand-in's echo), silence while it has nothing."""

    def __init__(self) -> None:
        self._buf = np.zeros(0, np.int16)

    def push(self, pcm: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, pcm])[-RATE * 2 :]  # at most 2 s behind

    def __call__(self, start: int, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        take = self._buf[:n]
        out[: len(take)] = take
        self._buf = self._buf[len(take) :]
        return out


class SignalTrack(MediaStreamTrack):
    """An audio track paced in real time (20 ms frames, 48 kHz mono) from a sample source.

    `sent` records (monotonic time, first sample) per frame, so a bench can tell when a click left.
    """

    kind = "audio"

    def __init__(self, source: Callable[[int, int], np.ndarray]) -> None:
        super().__init__()
        self.source = source
        self.sent: list[tuple[float, int]] = []
        self._start = 0.0
        self._next = -1

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._next < 0:
            self._start, self._next = time.monotonic(), 0
        else:
            self._next += FRAME
            await asyncio.sleep(max(0.0, self._start + self._next / RATE - time.monotonic()))
        pcm = np.asarray(self.source(self._next, FRAME), dtype=np.int16)
        self.sent.append((time.monotonic(), self._next))
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(pcm.tobytes())
        frame.pts = self._next
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


@dataclass
class Recording:
    """What arrived on an audio track: 48 kHz mono int16 PCM and when each frame came out."""

    chunks: list[np.ndarray] = field(default_factory=list)
    times: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, first sample)
    count: int = 0

    def add(self, frame: AudioFrame) -> np.ndarray:
        arr = frame.to_ndarray()
        channels = len(frame.layout.channels)
        if frame.format.is_planar:
            mono = arr.mean(axis=0)
        else:
            mono = arr.reshape(-1, channels).mean(axis=1)
        if frame.sample_rate != RATE:  # not expected from aiortc's Opus decoder; keep 48 kHz anyway
            idx = np.arange(0, len(mono), frame.sample_rate / RATE)
            mono = np.interp(idx, np.arange(len(mono)), mono)
        pcm = mono.astype(np.int16)
        self.times.append((time.monotonic(), self.count))
        self.chunks.append(pcm)
        self.count += len(pcm)
        return pcm

    def pcm(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)

    def seconds(self) -> float:
        return self.count / RATE


async def record_track(track: MediaStreamTrack, rec: Recording, echo: EchoSource | None = None) -> None:
    """Pull frames from a remote track into `rec` until it ends (and feed `echo`, if any)."""
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        pcm = rec.add(frame)
        if echo is not None:
            echo.push(pcm)


def dominant_frequency(pcm: np.ndarray, rate: int = RATE) -> float:
    """The FFT peak (Hz) of `pcm`, with parabolic interpolation between bins."""
    x = pcm.astype(np.float64)
    x = (x - x.mean()) * np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x))
    spec[0] = 0
    k = int(np.argmax(spec))
    if 0 < k < len(spec) - 1:
        a, b, c = np.log(spec[k - 1 : k + 2] + 1e-12)
        k = k + 0.5 * (a - c) / (a - 2 * b + c)
    return float(k * rate / len(x))


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


# --- RTP headers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RtpHeader:
    """The fixed RTP header (RFC 3550 section 5.1) of one received packet, after SRTP."""

    version: int
    padding: bool
    extension: bool
    csrc_count: int
    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    size: int
    arrival: float


def parse_rtp_header(data: bytes, arrival: float = 0.0) -> RtpHeader:
    if len(data) < 12:
        raise ValueError(f"RTP packet of {len(data)} bytes is shorter than its 12-byte header")
    b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    return RtpHeader(b0 >> 6, bool(b0 & 0x20), bool(b0 & 0x10), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc,
                     len(data), arrival)


def tap_rtp(pc: RTCPeerConnection, out: list[RtpHeader]) -> None:
    """Record the header of every RTP packet the audio transport decrypts (aiortc's hook point)."""
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if getattr(transport, "_rtflash_tapped", False):
            continue
        inner = transport._handle_rtp_data

        async def tapped(data: bytes, arrival_time_ms: int, inner: Any = inner) -> None:
            try:
                out.append(parse_rtp_header(data, time.monotonic()))
            except ValueError:
                pass
            await inner(data, arrival_time_ms)

        transport._handle_rtp_data = tapped
        transport._rtflash_tapped = True


def rtp_problems(headers: list[RtpHeader], payload_type: int, frame_ticks: int = FRAME) -> list[str]:
    """What is wrong with a received RTP stream (empty when well-formed): version 2, one payload type,
    one SSRC, sequence numbers +1 (mod 2^16) and timestamps + one frame per packet, in arrival order."""
    problems = []
    if not headers:
        return ["no RTP packet received"]
    for h in headers:
        if h.version != 2:
            problems.append(f"seq {h.sequence}: version {h.version}")
        if h.payload_type != payload_type:
            problems.append(f"seq {h.sequence}: payload type {h.payload_type}, negotiated {payload_type}")
    if len({h.ssrc for h in headers}) != 1:
        problems.append(f"{len({h.ssrc for h in headers})} SSRCs")
    for a, b in zip(headers, headers[1:]):
        if (b.sequence - a.sequence) % 65536 != 1:
            problems.append(f"sequence {a.sequence} -> {b.sequence}")
        elif (b.timestamp - a.timestamp) % 2**32 != frame_ticks:
            problems.append(f"seq {b.sequence}: timestamp +{(b.timestamp - a.timestamp) % 2**32}, expected +{frame_ticks}")
    return problems


def negotiated_payload_type(sdp: str, codec: str = "opus") -> int | None:
    """The payload type `sdp` maps to `codec` (the first `a=rtpmap:PT codec/...`)."""
    for line in sdp.splitlines():
        if line.startswith("a=rtpmap:"):
            pt, _, enc = line[len("a=rtpmap:") :].partition(" ")
            if enc.lower().startswith(codec + "/"):
                return int(pt)
    return None


# --- the stand-in ---------------------------------------------------------------------------------


def api_error(status: int, message: str, type_: str, code: str | None, param: str | None = None) -> web.Response:
    """The API's error shape: {"error": {"message", "type", "code", "param"}}."""
    body = {"error": {"message": message, "type": type_, "code": code, "param": param}}
    return web.json_response(body, status=status)


@dataclass
class RequestRecord:
    """One HTTP request as the stand-in saw it (the canary test reads `headers`)."""

    method: str
    path_qs: str
    headers: dict[str, str]
    body: str
    status: int = 0


@dataclass
class Call:
    """One accepted call: its SDPs, its peer connection, and everything recorded on it."""

    id: str
    model: str
    offer: str
    answer: str = ""
    dropped_candidates: list[str] = field(default_factory=list)
    pc: RTCPeerConnection | None = None
    out_track: SignalTrack | None = None
    received: Recording = field(default_factory=Recording)
    rtp: list[RtpHeader] = field(default_factory=list)
    events_in: list[dict] = field(default_factory=list)
    events_out: list[dict] = field(default_factory=list)
    bad_messages: list[str] = field(default_factory=list)
    session: dict = field(default_factory=dict)
    states: list[tuple[float, str]] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    channel_open: float | None = None
    channel: Any = None
    hung_up: float | None = None  # monotonic time of a hang-up request that ended it
    dtls_dropped: list[int] = field(default_factory=list)  # peer "drop_dtls": sizes of the records not sent

    @property
    def state(self) -> str:
        return self.states[-1][1] if self.states else "new"

    def connected_at(self) -> float | None:
        return next((t for t, s in self.states if s == "connected"), None)

    def event_types_in(self) -> list[str]:
        return [e.get("type", "") for e in self.events_in]


def parse_call_form(content_type: str, body: str) -> tuple[str, dict]:
    """The unified interface's multipart/form-data body: (the `sdp` part, the `session` part as JSON)."""
    from email import message_from_bytes, policy

    msg = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n{body}".encode(), policy=policy.HTTP)
    if not msg.is_multipart():
        raise ValueError("not multipart/form-data")
    parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True).decode()
             for p in msg.iter_parts()}
    if "sdp" not in parts:
        raise ValueError("no `sdp` part")
    session = json.loads(parts["session"]) if parts.get("session") else {}
    if not isinstance(session, dict):
        raise ValueError("`session` is not a JSON object")
    return parts["sdp"], session


def _merge(into: dict, update: dict) -> dict:
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
    return into


TRANSCRIPT = "Hello from the rtflash stand-in."


class StandIn:
    """The endpoint. Configure, then `await start()`; `calls` fills as clients call in.

    play: "tone" (tone_hz), "echo" (what it receives, back), "silence", or a source callable.
    """

    def __init__(
        self,
        pki: Pki,
        api_key: str,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        mode: str = "ok",
        play: str | Callable[[int, int], np.ndarray] = "tone",
        tone_hz: float = 440.0,
        slow_seconds: float = 30.0,
        respond: bool = True,
        peer: str = "stock",
        legacy_endpoint: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: one of {MODES}")
        if peer not in PEERS:
            raise ValueError(f"peer {peer!r}: one of {PEERS}")
        self.peer = peer
        self.pki, self.api_key, self.host, self.port = pki, api_key, host, port
        self.mode, self.play, self.tone_hz = mode, play, tone_hz
        self.slow_seconds, self.respond = slow_seconds, respond
        # Extra case, off by default: also serve the first WebRTC endpoint, `POST /v1/realtime?model=M`
        # (the same SDP offer/answer exchange; what openai-realtime-embedded-sdk compiles in).
        self.legacy_endpoint = legacy_endpoint
        self.calls: list[Call] = []
        self.requests: list[RequestRecord] = []  # create-call requests
        self.hangups: list[RequestRecord] = []  # hang-up requests
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def base_url(self) -> str:
        """What a client configures as its API URL (it appends /realtime/calls?model=M)."""
        return f"https://{self.host}:{self.port}/v1"

    @property
    def calls_url(self) -> str:
        return f"{self.base_url}/realtime/calls"

    async def start(self) -> None:
        loopback_only()
        app = web.Application(client_max_size=256 * 1024)
        app.router.add_post("/v1/realtime/calls", self._create_call)
        if self.legacy_endpoint:
            app.router.add_post("/v1/realtime", self._create_call)
        app.router.add_post("/v1/realtime/calls/{call_id}/hangup", self._hangup)
        # shutdown_timeout: a "slow" request still sleeping must not hold stop() for aiohttp's default 60 s
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.pki.server_context(),
                           reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close every call's peer connection and the HTTPS server."""
        for call in self.calls:
            if call.pc is not None:
                await call.pc.close()
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # HTTP -----------------------------------------------------------------------------------------

    async def _create_call(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        rec = RequestRecord(request.method, request.path_qs, dict(request.headers), body)
        self.requests.append(rec)
        resp = await self._answer_request(request, body)
        rec.status = resp.status
        return resp

    async def _hangup(self, request: web.Request) -> web.Response:
        """End one call: close its RTCPeerConnection (the device sees DTLS close and ICE go)."""
        rec = RequestRecord(request.method, request.path_qs, dict(request.headers), await request.text())
        self.hangups.append(rec)
        call_id = request.match_info["call_id"]
        call = next((c for c in self.calls if c.id == call_id), None)
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            resp = api_error(401, "Incorrect API key provided. You can find your API key at "
                             "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")
        elif call is None or call.pc is None or call.hung_up is not None or call.state in ("closed", "failed"):
            resp = api_error(404, f"Call '{call_id}' not found or no longer active.", "invalid_request_error",
                             "call_not_found", "call_id")
        else:
            call.hung_up = time.monotonic()
            await call.pc.close()
            resp = web.Response(status=200)
        rec.status = resp.status
        return resp

    async def _answer_request(self, request: web.Request, body: str) -> web.StreamResponse:
        mode = self.mode
        if mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        if mode == "unauthorized" or request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return api_error(401, "Incorrect API key provided. You can find your API key at "
                             "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key")
        session: dict = {}
        if request.content_type == "multipart/form-data":  # the unified interface: `sdp` + `session` parts
            try:
                body, session = parse_call_form(request.headers.get("Content-Type", ""), body)
            except ValueError as exc:
                return api_error(400, f"Invalid form: {exc}", "invalid_request_error", "invalid_form", "session")
        elif request.content_type != "application/sdp":
            return api_error(400, f"Unsupported content type {request.content_type!r}: send the SDP offer as "
                             "application/sdp.", "invalid_request_error", "unsupported_content_type")
        model = request.query.get("model", "") or str(session.get("model", ""))
        if not model:
            return api_error(400, "Missing required parameter: 'model'.", "invalid_request_error",
                             "missing_required_parameter", "model")
        if not body.startswith("v=0"):
            return api_error(400, "The request body is not an SDP offer.", "invalid_request_error", "invalid_offer",
                             "sdp")
        if mode == "not_sdp":
            return web.Response(status=201, text="<html><body><h1>Welcome to the hotel Wi-Fi</h1></body></html>",
                                content_type="text/html")
        if mode == "close_mid_body":
            partial = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            resp = web.StreamResponse(status=201, headers={"Content-Type": "application/sdp"})
            resp.content_length = len(partial) * 4
            await resp.prepare(request)
            await resp.write(partial.encode())
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()
            return resp
        call = await self._accept(body, model)
        _merge(call.session, session)  # the server's session config, before the channel opens
        return web.Response(status=201, body=call.answer.encode(), content_type="application/sdp",
                            headers={"Location": f"/v1/realtime/calls/{call.id}"})

    # WebRTC ---------------------------------------------------------------------------------------

    def _source(self, echo: EchoSource) -> Callable[[int, int], np.ndarray]:
        if callable(self.play):
            return self.play
        return {"tone": tone(self.tone_hz), "echo": echo, "silence": silence}[self.play]

    async def _accept(self, offer: str, model: str) -> Call:
        clean, dropped = strip_non_loopback(offer)
        call = Call(id="rtc_" + secrets.token_hex(16), model=model, offer=offer, dropped_candidates=dropped)
        call.session = {"type": "realtime", "object": "realtime.session", "id": "sess_" + secrets.token_hex(12),
                        "model": model, "output_modalities": ["audio"], "instructions": "",
                        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                                  "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}}}
        self.calls.append(call)
        pc = new_peer()
        call.pc = pc
        echo = EchoSource()

        @pc.on("connectionstatechange")
        async def _state() -> None:
            call.states.append((time.monotonic(), pc.connectionState))

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._spawn(record_track(track, call.received, echo if self.play == "echo" else None))

        @pc.on("datachannel")
        def _channel(channel: Any) -> None:
            if channel.label != EVENTS_LABEL:
                return
            call.channel, call.channel_open = channel, time.monotonic()

            @channel.on("message")
            def _message(message: str | bytes) -> None:
                self._on_event(call, message)

            self._send(call, {"type": "session.created", "session": call.session})

        await pc.setRemoteDescription(RTCSessionDescription(clean, "offer"))
        tap_rtp(pc, call.rtp)
        call.out_track = SignalTrack(self._source(echo))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                pc.addTrack(call.out_track)
                break
        await pc.setLocalDescription(await pc.createAnswer())
        call.answer = pc.localDescription.sdp  # stock aiortc: sha-256, sha-384 and sha-512 fingerprints
        if self.peer == "sha384_512_only":
            call.answer = only_fingerprints(call.answer, ("sha-384", "sha-512"))
        elif self.peer == "wrong_fingerprint":
            call.answer = foreign_fingerprints(call.answer)
        elif self.peer == "drop_dtls":
            drop_dtls(pc, call.dtls_dropped)
        assert_loopback_sdp(call.answer, "the stand-in's answer")
        return call

    def _send(self, call: Call, event: dict) -> None:
        event = {"event_id": "event_" + secrets.token_hex(8), **event}
        call.events_out.append(event)
        if call.channel is not None and call.channel.readyState == "open":
            call.channel.send(json.dumps(event))

    def _on_event(self, call: Call, message: str | bytes) -> None:
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        try:
            event = json.loads(text)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            call.bad_messages.append(text)
            self._send(call, {"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_json",
                                                         "message": f"Invalid JSON: {exc}", "param": None}})
            return
        call.events_in.append(event)
        kind = event.get("type")
        if kind == "session.update":
            model = (event.get("session") or {}).get("model", call.model)
            if model != call.model:  # the API: a session's model cannot be changed by session.update
                self._send(call, {"type": "error", "error": {
                    "type": "invalid_request_error", "code": "invalid_value", "param": "session.model",
                    "message": f"Cannot update a session's model: the call was created with {call.model!r}."}})
                return
            _merge(call.session, event.get("session") or {})
            self._send(call, {"type": "session.updated", "session": call.session})
            if self.respond:
                self._respond(call)
        elif kind == "response.create":
            self._respond(call)

    def _respond(self, call: Call) -> None:
        """A model turn as the API reports it over WebRTC (the audio itself goes on the media track)."""
        rid, iid = "resp_" + secrets.token_hex(8), "item_" + secrets.token_hex(8)
        response = {"object": "realtime.response", "id": rid, "status": "in_progress", "output": []}
        item = {"id": iid, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
        self._send(call, {"type": "response.created", "response": response})
        self._send(call, {"type": "response.output_item.added", "response_id": rid, "output_index": 0, "item": item})
        self._send(call, {"type": "output_audio_buffer.started", "response_id": rid})
        self._send(call, {"type": "response.output_audio_transcript.delta", "response_id": rid, "item_id": iid,
                          "output_index": 0, "content_index": 0, "delta": TRANSCRIPT})
        self._send(call, {"type": "response.output_audio_transcript.done", "response_id": rid, "item_id": iid,
                          "output_index": 0, "content_index": 0, "transcript": TRANSCRIPT})
        self._send(call, {"type": "response.done",
                          "response": {**response, "status": "completed", "output": [{**item, "status": "completed"}]}})


class StandInThread:
    """Runs a StandIn on its own event loop in a thread, for synchronous tests and a firmware process.

    with StandInThread(pki, key) as s: ... s.standin.calls ...; s.wait_until(lambda: ..., 5)
    """

    def __init__(self, pki: Pki, api_key: str, **kwargs: Any) -> None:
        self.standin = StandIn(pki, api_key, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="realtime-standin", daemon=True)

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the stand-in's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> StandInThread:
        self._thread.start()
        self.run(self.standin.start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.run(self.standin.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    def __enter__(self) -> StandInThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.standin.base_url

    def wait_until(self, predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
        """Poll `predicate` until true or `timeout` seconds pass (bounded)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(step)
        return predicate()


# --- an aiortc client of the endpoint (the reference) ----------------------------------------------


@dataclass
class ClientCall:
    """The client side of one call: status, headers and SDPs, plus what the client received."""

    status: int
    headers: dict[str, str]
    body: str
    offer: str = ""
    pc: RTCPeerConnection | None = None
    track: SignalTrack | None = None
    channel: Any = None
    received: Recording = field(default_factory=Recording)
    rtp: list[RtpHeader] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    opened: float | None = None
    states: list[tuple[float, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def connected_at(self) -> float | None:
        return next((t for t, s in self.states if s == "connected"), None)

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


async def client_call(
    calls_url: str,
    api_key: str,
    model: str,
    ssl_context: ssl.SSLContext,
    source: Callable[[int, int], np.ndarray],
    session: dict | None = None,
    timeout: float = 10.0,
    mangle_offer: Callable[[str], str] | None = None,
) -> ClientCall:
    """Offer a call as a device would (audio sendrecv + the `oai-events` channel); returns once the
    HTTP answer is in (and applied, on 201). The caller waits for connection/media and closes it.
    `mangle_offer` rewrites the offer on the wire (tests of the stand-in's candidate filter)."""
    started = time.monotonic()
    pc = new_peer()
    tasks: list[asyncio.Task] = []
    track = SignalTrack(source)
    pc.addTransceiver(track, direction="sendrecv")
    channel = pc.createDataChannel(EVENTS_LABEL)
    result = ClientCall(0, {}, "", pc=pc, track=track, channel=channel, started=started)

    @pc.on("connectionstatechange")
    async def _state() -> None:
        result.states.append((time.monotonic(), pc.connectionState))

    @pc.on("track")
    def _track(remote: MediaStreamTrack) -> None:
        tasks.append(asyncio.ensure_future(record_track(remote, result.received)))

    @channel.on("open")
    def _open() -> None:
        result.opened = time.monotonic()
        if session is not None:
            channel.send(json.dumps({"type": "session.update", "session": session}))

    @channel.on("message")
    def _message(message: str | bytes) -> None:
        result.events.append(json.loads(message))

    await pc.setLocalDescription(await pc.createOffer())
    result.offer = pc.localDescription.sdp
    assert_loopback_sdp(result.offer, "the client's offer")
    async with ClientSession(timeout=ClientTimeout(total=timeout)) as http:
        async with http.post(
            calls_url,
            params={"model": model},
            data=(mangle_offer(result.offer) if mangle_offer else result.offer).encode(),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/sdp"},
            ssl=ssl_context,
        ) as resp:
            result.status, result.headers, result.body = resp.status, dict(resp.headers), await resp.text()
    if result.status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(result.body, "answer"))
        tap_rtp(pc, result.rtp)
    else:
        await pc.close()
    return result


# --- as a process: `python -m testkit.realtime_standin` ----------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Serve the stand-in until SIGTERM/SIGINT (so a test can kill it for real, or a user can point
    `rtflash exec --api-url ... --ca-file ...` at it). The key comes from an environment variable, never
    argv (argv is visible to every user of the machine). Prints one line: `listening <base url>`."""
    import argparse
    import os
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m testkit.realtime_standin", description=main.__doc__)
    parser.add_argument("--pki-dir", type=Path, required=True,
                        help="folder for the throw-away CA (ca.pem: what the client trusts) and server cert")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key-env", default="RTFLASH_STANDIN_KEY", help="environment variable holding the API key")
    parser.add_argument("--play", default="tone", choices=("tone", "echo", "silence"))
    parser.add_argument("--tone-hz", type=float, default=440.0)
    parser.add_argument("--mode", default="ok", choices=MODES)
    parser.add_argument("--peer", default="stock", choices=PEERS,
                        help="stock aiortc (default), or one of the deliberately odd answerers")
    args = parser.parse_args(argv)
    key = os.environ.get(args.key_env, "")
    if not key:
        print(f"error: set {args.key_env} to the API key the stand-in accepts", file=sys.stderr)
        return 2
    pki = make_pki(args.pki_dir, ca=existing_ca(args.pki_dir))

    async def serve() -> None:
        standin = StandIn(pki, key, port=args.port, play=args.play, tone_hz=args.tone_hz, mode=args.mode,
                          peer=args.peer)
        await standin.start()
        print(f"listening {standin.base_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await standin.stop()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
