"""The Realtime API stand-in, proven with an aiortc client on loopback: HTTPS signalling (201 + SDP,
Location), ICE/DTLS/SRTP, the oai-events channel, tones both ways compared as signals, RTP headers,
the 401 body, the fault modes, TLS verification, and 127.0.0.1-only candidates in every SDP."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from testkit import realtime_standin as rs

KEY = "sk-" + "standin-test-0123456789"
MODEL = "gpt-realtime"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> rs.Pki:
    return rs.make_pki(tmp_path_factory.mktemp("pki"))


async def wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


async def post(url: str, pki: rs.Pki, *, key: str = KEY, body: str = "v=0\r\n", ctype: str = "application/sdp",
               params: dict | None = None, timeout: float = 5.0) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http, \
            http.post(url, params={"model": MODEL} if params is None else params, data=body.encode(),
                      headers={"Authorization": f"Bearer {key}", "Content-Type": ctype},
                      ssl=pki.client_context()) as resp:
        return resp.status, dict(resp.headers), await resp.text()


def test_call_connects_media_both_ways_and_events(pki: rs.Pki) -> None:
    session = {"instructions": "Speak like a lighthouse keeper.", "audio": {"output": {"voice": "marin"}}}
    with rs.StandInThread(pki, KEY, play="tone", tone_hz=440.0) as server:

        async def client() -> rs.ClientCall:
            call = await rs.client_call(server.standin.calls_url, KEY, MODEL, pki.client_context(), rs.tone(1000.0),
                                        session=session)
            try:
                assert call.status == 201, call.body
                assert await wait_for(lambda: call.connected_at() and call.opened, 5), call.states
                assert await wait_for(lambda: any(e["type"] == "response.done" for e in call.events), 5)
                call.channel.send("this is not json")
                await wait_for(lambda: call.received.seconds() >= 1.2 and any(e["type"] == "error" for e in call.events),
                               5)
            finally:
                await call.close()
            return call

        call = asyncio.run(client())
        stand = server.standin.calls[0]
        assert server.wait_until(lambda: stand.state == "closed", 5)

    # signalling, as the API documents it
    assert call.headers["Content-Type"].startswith("application/sdp")
    assert re.fullmatch(r"/v1/realtime/calls/rtc_[0-9a-f]{32}", call.headers["Location"])
    assert call.headers["Location"].endswith(stand.id)
    assert call.body.startswith("v=0") and call.body == stand.answer
    assert stand.model == MODEL
    assert server.standin.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert server.standin.requests[0].path_qs == f"/v1/realtime/calls?model={MODEL}"
    # loopback only, both SDPs
    rs.assert_loopback_sdp(call.offer, "client offer")
    rs.assert_loopback_sdp(stand.answer, "stand-in answer")
    assert stand.dropped_candidates == []
    # ICE + DTLS reached connected on both sides, data channel opened
    assert stand.connected_at() is not None and call.connected_at() is not None
    assert stand.channel_open is not None and call.opened is not None
    # events: created first, the update merged, a model turn, an error for bad JSON
    types = [e["type"] for e in call.events]
    assert types[:2] == ["session.created", "session.updated"]
    assert {"response.created", "response.output_audio_transcript.delta", "response.done"} <= set(types)
    assert "error" in types and stand.bad_messages == ["this is not json"]
    updated = call.events[1]["session"]
    assert updated["instructions"] == session["instructions"]
    assert updated["audio"]["output"]["voice"] == "marin" and updated["model"] == MODEL
    assert stand.event_types_in() == ["session.update"]
    # audio both ways, compared as signals (skip the first 100 ms of codec start-up)
    up, down = stand.received.pcm()[4800:], call.received.pcm()[4800:]
    assert len(up) >= rs.RATE * 0.5 and len(down) >= rs.RATE * 0.5
    assert abs(rs.dominant_frequency(up) - 1000.0) / 1000.0 < 0.02
    assert abs(rs.dominant_frequency(down) - 440.0) / 440.0 < 0.02
    assert rs.rms(up) > 1000 and rs.rms(down) > 1000
    # RTP headers seen by the stand-in: v2, negotiated PT, +1 sequence, +960 timestamp
    pt = rs.negotiated_payload_type(stand.answer)
    assert pt is not None
    assert len(stand.rtp) >= 40
    assert rs.rtp_problems(stand.rtp, pt) == []


def test_echo_mode_returns_what_it_hears(pki: rs.Pki) -> None:
    with rs.StandInThread(pki, KEY, play="echo") as server:

        async def client() -> rs.ClientCall:
            call = await rs.client_call(server.standin.calls_url, KEY, MODEL, pki.client_context(), rs.tone(700.0))
            try:
                await wait_for(lambda: call.received.seconds() >= 1.5, 6)
            finally:
                await call.close()
            return call

        call = asyncio.run(client())
    down = call.received.pcm()[-rs.RATE // 2 :]
    assert abs(rs.dominant_frequency(down) - 700.0) / 700.0 < 0.02


def test_foreign_and_mdns_candidates_are_dropped(pki: rs.Pki) -> None:
    def mangle(offer: str) -> str:
        extra = ("a=candidate:1 1 udp 2130706431 192.0.2.10 40000 typ host\r\n"
                 "a=candidate:2 1 udp 2130706431 0f4b4f2c-7f6a-4bd8-9a58-1a2b3c4d5e6f.local 40001 typ host\r\n")
        return offer.replace("a=end-of-candidates", extra + "a=end-of-candidates", 1)

    with rs.StandInThread(pki, KEY, play="silence", respond=False) as server:

        async def client() -> rs.ClientCall:
            call = await rs.client_call(server.standin.calls_url, KEY, MODEL, pki.client_context(), rs.silence,
                                        mangle_offer=mangle)
            try:
                await wait_for(lambda: call.connected_at() is not None, 5)
            finally:
                await call.close()
            return call

        call = asyncio.run(client())
        stand = server.standin.calls[0]
    assert len(stand.dropped_candidates) == 2
    assert "192.0.2.10" in stand.dropped_candidates[0] and ".local" in stand.dropped_candidates[1]
    assert "192.0.2.10" not in stand.answer
    assert call.connected_at() is not None


def test_wrong_key_gets_401_with_the_api_error_body(pki: rs.Pki) -> None:
    with rs.StandInThread(pki, KEY) as server:
        status, headers, body = asyncio.run(post(server.standin.calls_url, pki, key="sk-wrong"))
        assert status == 401 and headers["Content-Type"].startswith("application/json")
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "code", "param"}
        assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
        assert "sk-wrong" not in body
        # forced 401 even with the right key
        server.standin.mode = "unauthorized"
        assert asyncio.run(post(server.standin.calls_url, pki))[0] == 401
        assert server.standin.calls == []


def test_bad_requests_get_400(pki: rs.Pki) -> None:
    with rs.StandInThread(pki, KEY) as server:
        url = server.standin.calls_url
        for kwargs, code in [({"ctype": "application/json"}, "unsupported_content_type"),
                             ({"params": {}}, "missing_required_parameter"),
                             ({"body": "hello"}, "invalid_offer")]:
            status, _, body = asyncio.run(post(url, pki, **kwargs))
            assert status == 400 and json.loads(body)["error"]["code"] == code


def test_fault_modes(pki: rs.Pki) -> None:
    offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    with rs.StandInThread(pki, KEY, slow_seconds=3.0) as server:
        url = server.standin.calls_url
        server.standin.mode = "not_sdp"
        status, headers, body = asyncio.run(post(url, pki, body=offer))
        assert status == 201 and headers["Content-Type"].startswith("text/html") and not body.startswith("v=0")

        server.standin.mode = "close_mid_body"
        with pytest.raises(aiohttp.ClientPayloadError):
            asyncio.run(post(url, pki, body=offer))

        server.standin.mode = "slow"
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            asyncio.run(post(url, pki, body=offer, timeout=0.5))
        assert time.monotonic() - started < 2.0
        server.standin.mode = "ok"
    assert [r.status for r in server.standin.requests][:2] == [201, 201]


def test_tls_is_verified_by_the_client(pki: rs.Pki, tmp_path: Path) -> None:
    other_ca = rs.make_pki(tmp_path / "other")
    other_host = rs.make_pki(tmp_path / "host", hosts=("example.invalid",), ca=pki)
    assert other_host.ca_file == pki.ca_file
    with rs.StandInThread(pki, KEY) as server, pytest.raises(aiohttp.ClientConnectorCertificateError):
        asyncio.run(post(server.standin.calls_url, other_ca))
    with rs.StandInThread(other_host, KEY) as server:
        with pytest.raises(aiohttp.ClientConnectorCertificateError) as err:
            asyncio.run(post(server.standin.calls_url, pki))
        assert isinstance(err.value.certificate_error, ssl.SSLCertVerificationError)


def test_sdp_helpers() -> None:
    sdp = ("v=0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n"
           "a=candidate:2 1 UDP 1 10.0.0.2 5001 typ srflx raddr 0.0.0.0 rport 0\r\n"
           "a=rtpmap:111 opus/48000/2\r\n")
    cands = rs.sdp_candidates(sdp)
    assert [(c.address, c.port, c.transport, c.typ) for c in cands] == [("127.0.0.1", 5000, "udp", "host"),
                                                                        ("10.0.0.2", 5001, "udp", "srflx")]
    clean, dropped = rs.strip_non_loopback(sdp)
    assert "10.0.0.2" not in clean and len(dropped) == 1
    rs.assert_loopback_sdp(clean)
    with pytest.raises(AssertionError, match="non-loopback"):
        rs.assert_loopback_sdp(sdp)
    assert rs.negotiated_payload_type(sdp) == 111


def test_rtp_problems_spots_bad_streams() -> None:
    def h(seq: int, ts: int, pt: int = 111, version: int = 2) -> rs.RtpHeader:
        b0 = version << 6
        return rs.parse_rtp_header(bytes([b0, pt]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + b"\0\0\0\1")

    good = [h(65535, 2**32 - 960), h(0, 0), h(1, 960)]
    assert rs.rtp_problems(good, 111) == []
    assert rs.rtp_problems([h(1, 0), h(3, 960)], 111) == ["sequence 1 -> 3"]
    assert "timestamp +480" in rs.rtp_problems([h(1, 0), h(2, 480)], 111)[0]
    assert "payload type 0" in rs.rtp_problems([h(1, 0, pt=0)], 111)[0]
    assert "version 1" in rs.rtp_problems([h(1, 0, version=1)], 111)[0]
    assert rs.rtp_problems([], 111) == ["no RTP packet received"]
    with pytest.raises(ValueError):
        rs.parse_rtp_header(b"\x80")
    assert rs.dominant_frequency(rs.tone(1234.0)(0, 9600)) == pytest.approx(1234.0, rel=0.002)
    assert np.all(rs.pcm_source(np.array([1, 2], np.int16))(1, 3) == [2, 0, 0])


def test_hangup_ends_the_call_and_answers_like_the_api(pki: rs.Pki) -> None:
    """`POST /v1/realtime/calls/{call_id}/hangup`: Bearer checked, 404 for a call it does not have (or no
    longer has), 200 closes that call's peer connection and no other."""
    with rs.StandInThread(pki, KEY, play="silence", respond=False) as server:
        base = server.standin.calls_url

        async def scenario() -> tuple[list[tuple[int, str]], list[rs.ClientCall], str, str]:
            calls = [await rs.client_call(base, KEY, MODEL, pki.client_context(), rs.silence) for _ in range(2)]
            try:
                assert all(c.status == 201 for c in calls)
                assert await wait_for(lambda: all(c.connected_at() for c in calls), 5)
                target = calls[0].headers["Location"].rsplit("/", 1)[-1]
                answers = []
                for key, call_id in ((KEY + "x", target), (KEY, "rtc_" + "0" * 32), (KEY, target), (KEY, target)):
                    status, _, body = await post(f"{base}/{call_id}/hangup", pki, key=key, body="", params={})
                    answers.append((status, body))
                ended = await wait_for(lambda: calls[0].states[-1][1] in ("closed", "failed"), 10)
                assert ended, calls[0].states
                await asyncio.sleep(0.5)  # the other call, meanwhile: still up on both sides
                return answers, calls, calls[1].states[-1][1], server.standin.calls[1].state
            finally:
                for c in calls:
                    await c.close()

        answers, calls, other_client, other_standin = asyncio.run(scenario())
        stand = {c.id: c for c in server.standin.calls}
    hung_id = calls[0].headers["Location"].rsplit("/", 1)[-1]
    assert [s for s, _ in answers] == [401, 404, 200, 404]
    for status, body in (answers[0], answers[1], answers[3]):
        error = json.loads(body)["error"]
        assert set(error) == {"message", "type", "code", "param"} and error["type"] == "invalid_request_error"
    assert json.loads(answers[0][1])["error"]["code"] == "invalid_api_key" and KEY not in answers[0][1]
    assert json.loads(answers[1][1])["error"]["code"] == "call_not_found" and answers[2][1] == ""
    assert stand[hung_id].hung_up is not None and stand[hung_id].state == "closed"
    assert other_client == "connected" and other_standin == "connected"
    assert [c.hung_up is None for c in server.standin.calls] == [False, True]
    hangups = server.standin.hangups
    assert len(hangups) == 4 and hangups[2].headers["Authorization"] == f"Bearer {KEY}"
    assert [r.status for r in hangups] == [401, 404, 200, 404] and len(server.standin.requests) == 2


def test_the_stand_in_is_stock_aiortc_and_odd_peers_are_explicit() -> None:
    """No DTLS or SDP bending by default: aiortc's own certificate code is untouched; the odd answerers'
    SDP edits do exactly what their names say."""
    from aiortc.rtcdtlstransport import RTCCertificate

    assert RTCCertificate._create_ssl_context.__module__ == "aiortc.rtcdtlstransport"
    assert not hasattr(rs, "accept_rsa_dtls") and not hasattr(rs, "sha256_fingerprint_only")
    cert = RTCCertificate.generateCertificate()
    lines = [f"a=fingerprint:{f.algorithm} {f.value}" for f in cert.getFingerprints()]
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" + "\r\n".join(lines) + "\r\na=setup:active\r\n"
    assert [ln.split()[0] for ln in rs.fingerprint_lines(sdp)] == \
        ["a=fingerprint:sha-256", "a=fingerprint:sha-384", "a=fingerprint:sha-512"]
    strict = rs.only_fingerprints(sdp, ("sha-384", "sha-512"))
    assert rs.fingerprint_lines(strict) == lines[1:] and "a=setup:active" in strict
    wrong = rs.foreign_fingerprints(sdp)
    assert [ln.split()[0] for ln in rs.fingerprint_lines(wrong)] == [ln.split()[0] for ln in lines]
    assert not set(rs.fingerprint_lines(wrong)) & set(lines)
    with pytest.raises(ValueError, match="peer 'bent'"):
        rs.StandIn(None, "k", peer="bent")  # type: ignore[arg-type]
