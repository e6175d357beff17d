"""`rtflash relay` in front of the Realtime stand-in and a minimal upstream, on 127.0.0.1 only.

A device holding only its token completes a real WebRTC call (aiortc client, audio both ways) through
the relay; the stand-in sees the real key, the device never does; revocation, unknown tokens, bad
bodies, oversized and slow offers, upstream failures; the key and tokens in no log, response or store
file; per-device limits under a bounded load (timing is bench/relay_bench.py's job)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from bench.relay_bench import OFFER, LoopThread, MiniUpstream, offer, wave
from rtflash.errors import ConfigError
from rtflash.relay.config import parse_relay_table, session_object, session_values
from rtflash.relay.limits import LimitConfig, Refused
from rtflash.relay.server import RedactingFormatter, Relay, RelayConfig
from rtflash.relay.sqlstore import PostgresStore, SqliteStore
from rtflash.relay.store import now_iso, token_hash
from rtflash.settings import Settings, load_settings
from testkit import realtime_standin as rs

KEY = "sk-" + "relay-test-KEY-canary-0123456789"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> rs.Pki:
    return rs.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def store(tmp_path) -> SqliteStore:
    return SqliteStore(tmp_path / "cfg" / "relay-devices.db")


def Store(path: Path) -> SqliteStore:
    return SqliteStore(path)


def store_bytes(store: SqliteStore) -> str:
    """Everything the store holds on disk (the database and its WAL), as text, for the secret scans."""
    return "".join(p.read_bytes().decode("latin-1") for p in store.files())


@pytest.fixture
def loop(request):
    """The relay's loop in a thread: asyncio's, or (parametrized indirectly) uvloop's, as `relay serve` runs it."""
    if getattr(request, "param", "asyncio") == "uvloop":
        import uvloop

        thread = LoopThread(uvloop.new_event_loop)
    else:
        thread = LoopThread()
    yield thread
    thread.close()


class Running:
    """A Relay on a LoopThread with its log captured (through the CLI's redacting formatter)."""

    def __init__(self, loop: LoopThread, pki: rs.Pki, store: Store, upstream: str, settings: Settings | None = None,
                 tls: bool = True, **options) -> None:
        settings = settings or Settings()
        self.log = io.StringIO()
        self.handler = logging.StreamHandler(self.log)
        self.handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s"))
        logger = logging.getLogger("rtflash.relay")
        logger.addHandler(self.handler)
        logger.setLevel(logging.INFO)
        config = RelayConfig(api_key=KEY, store=store, upstream=upstream, upstream_ssl=pki.client_context(),
                             upstream_ca=str(pki.ca_file),
                             session_for=lambda d: session_object(session_values(settings, d.name, d.board)),
                             **options)
        self.loop, self.relay = loop, Relay(config)
        loop.run(self.relay.start("127.0.0.1", 0, pki.server_context() if tls else None))

    @property
    def url(self) -> str:
        return self.relay.url

    def lines(self) -> list[str]:
        return [ln for ln in self.log.getvalue().splitlines() if ln]

    def stop(self) -> None:
        self.loop.run(self.relay.stop())
        logging.getLogger("rtflash.relay").removeHandler(self.handler)


@pytest.fixture
def mini(loop, pki):
    up = MiniUpstream(pki, api_key=KEY)
    loop.run(up.start())
    yield up
    loop.run(up.stop())


@pytest.fixture
def relay_mini(loop, pki, store, mini):
    running = Running(loop, pki, store, mini.url, read_timeout=0.5, upstream_timeout=1.0)
    yield running
    running.stop()


async def post(url: str, pki: rs.Pki, token: str | None, body: bytes = OFFER.encode(),
               ctype: str = "application/sdp", chunked: bool = False) -> tuple[int, dict, str]:
    headers = {"Content-Type": ctype}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data: object = body
    if chunked:
        async def gen():
            for i in range(0, len(body), 8192):
                yield body[i:i + 8192]
        data = gen()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
            http.post(url, data=data, headers=headers, ssl=pki.client_context()) as r:
        return r.status, dict(r.headers), await r.text()


def assert_clean(text: str, *secrets: str, where: str = "") -> None:
    for s in secrets:
        assert s not in text, f"a secret is in {where}"


# --- a real call through the relay ---------------------------------------------------------------


def test_call_through_relay_audio_both_ways_key_only_upstream(loop, pki, store, tmp_path):
    (tmp_path / "rtflash.toml").write_text('voice = "alloy"\n[relay.boards.sonatino]\nvoice = "verse"\n'
                                           '[relay.devices.kitchen]\nvoice = "marin"\ninstructions = "Be brief."\n')
    settings = load_settings(tmp_path)
    token = store.enroll("kitchen", "sonatino")
    with rs.StandInThread(pki, KEY, play="tone", tone_hz=440.0) as server:
        running = Running(loop, pki, store, server.standin.calls_url, settings)
        try:
            async def device() -> rs.ClientCall:
                call = await rs.client_call(running.url, token, "device-asks-for-this", pki.client_context(),
                                            rs.tone(1000.0))
                try:
                    assert call.status == 201, call.body
                    end = time.monotonic() + 8
                    while time.monotonic() < end and not (call.received.seconds() >= 1.2 and call.events):
                        await asyncio.sleep(0.05)
                finally:
                    await call.close()
                return call

            call = asyncio.run(device())
            stand = server.standin.calls[0]
            assert server.wait_until(lambda: stand.state == "closed", 5)
            loop.run(running.relay.flush())
        finally:
            running.stop()
    req = server.standin.requests[0]
    # upstream: the unified interface with the real key and the relay's session, no query from the device
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["Content-Type"].startswith("multipart/form-data")
    assert req.path_qs == "/v1/realtime/calls"
    assert stand.model == "gpt-realtime" and stand.offer == call.offer
    assert stand.session["audio"]["output"]["voice"] == "marin" and stand.session["instructions"] == "Be brief."
    assert call.events and call.events[0]["type"] == "session.created"
    assert call.events[0]["session"]["audio"]["output"]["voice"] == "marin"
    # the device got the answer and the Location as the API sent them
    assert call.body == stand.answer and call.headers["Location"] == f"/v1/realtime/calls/{stand.id}"
    assert call.headers["Content-Type"].startswith("application/sdp")
    # audio both ways, straight between device and stand-in
    up, down = stand.received.pcm()[4800:], call.received.pcm()[4800:]
    assert len(up) >= rs.RATE * 0.5 and len(down) >= rs.RATE * 0.5
    assert abs(rs.dominant_frequency(up) - 1000.0) < 20 and abs(rs.dominant_frequency(down) - 440.0) < 9
    # canary: the key reached the upstream only; the token only the device and the store's hash
    assert_clean(json.dumps(call.headers) + call.body, KEY, where="the device's response")
    assert_clean("\n".join(running.lines()), KEY, token, where="the relay's log")
    text = store_bytes(store)
    assert_clean(text, KEY, token, where="the store file")
    assert token_hash(token) in text and (store.path.stat().st_mode & 0o777) == 0o600
    assert store.get("kitchen").last_use is not None
    assert len(running.lines()) == 1 and "kitchen: 201 call rtc_" in running.lines()[0]


def test_revoke_mid_life_refuses_next_call_other_device_connects(loop, pki, store):
    a, b = store.enroll("dev-a"), store.enroll("dev-b")
    with rs.StandInThread(pki, KEY, play="silence") as server:
        running = Running(loop, pki, store, server.standin.calls_url)
        try:
            async def call(token: str) -> rs.ClientCall:
                c = await rs.client_call(running.url, token, "m", pki.client_context(), rs.tone(500.0))
                if c.status == 201:
                    end = time.monotonic() + 5
                    while time.monotonic() < end and c.connected_at() is None:
                        await asyncio.sleep(0.02)
                await c.close()
                return c

            first = asyncio.run(call(a))
            assert first.status == 201 and first.connected_at() is not None
            Store(store.path).revoke("dev-a")  # another process, as `rtflash relay revoke` is
            before = len(server.standin.requests)
            refused = asyncio.run(call(a))
            assert refused.status == 401 and json.loads(refused.body)["error"]["code"] == "device_revoked"
            assert len(server.standin.requests) == before  # nothing sent upstream
            other = asyncio.run(call(b))
            assert other.status == 201 and other.connected_at() is not None
        finally:
            running.stop()
    assert any("revoked device dev-a refused" in ln for ln in running.lines())


# --- bad input and upstream failures (minimal upstream) ----------------------------------------------


def test_unknown_missing_and_malformed_tokens_get_401_without_upstream(relay_mini, mini, pki, store):
    real = store.enroll("dev")
    forged = "rtd_" + "A" * 43
    for token, code in ((forged, "invalid_device_token"), ("nonsense", "invalid_device_token"),
                        (None, "missing_device_token"), (real[:-1] + ("B" if real[-1] != "B" else "C"), "invalid_device_token")):
        status, _, body = asyncio.run(post(relay_mini.url, pki, token))
        assert status == 401 and json.loads(body)["error"]["code"] == code
    assert mini.seen == [] and relay_mini.relay.metrics.upstream_requests == 0
    assert len(relay_mini.lines()) == 4 and all("401" in ln for ln in relay_mini.lines())
    assert_clean("\n".join(relay_mini.lines()), real, forged, KEY, where="the relay's log")


@pytest.mark.parametrize("body,ctype,chunked,status,code", [
    (b"<html>not an offer</html>", "application/sdp", False, 400, "invalid_offer"),
    (b"\xff\xfe v=0", "application/sdp", False, 400, "invalid_offer"),
    (OFFER.encode(), "application/json", False, 415, "unsupported_content_type"),
    (b"v=0\r\n" + b"a=x\r\n" * 20000, "application/sdp", False, 413, "offer_too_large"),
    (b"v=0\r\n" + b"a=x\r\n" * 20000, "application/sdp", True, 413, "offer_too_large"),
])
def test_bad_bodies(relay_mini, mini, pki, store, body, ctype, chunked, status, code):
    token = store.enroll("dev")
    got, _, text = asyncio.run(post(relay_mini.url, pki, token, body, ctype, chunked))
    assert got == status and json.loads(text)["error"]["code"] == code
    assert mini.seen == []
    assert len(relay_mini.lines()) == 1 and f"dev: {status}" in relay_mini.lines()[0]


def test_slow_client_gets_408(relay_mini, mini, pki, store):
    token = store.enroll("dev")
    port = int(relay_mini.url.split(":")[2].split("/")[0])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with pki.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall((f"POST /v1/realtime/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                     "Content-Type: application/sdp\r\nContent-Length: 500\r\n\r\nv=0\r\n").encode())
        t0 = time.monotonic()
        reply = tls.recv(4096).decode()
        waited = time.monotonic() - t0
    assert reply.startswith("HTTP/1.1 408") and "request_timeout" in reply  # JSON body in the same write
    assert 0.3 < waited < 3.0 and mini.seen == []
    assert "slow client" in relay_mini.lines()[0]


def test_upstream_down_502(loop, pki, store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connection refused
    running = Running(loop, pki, store, f"https://127.0.0.1:{port}/v1/realtime/calls")
    try:
        status, _, body = asyncio.run(post(running.url, pki, store.enroll("dev")))
    finally:
        running.stop()
    assert status == 502 and json.loads(body)["error"]["code"] == "upstream_unreachable"
    assert "upstream unreachable" in running.lines()[0]


def test_upstream_untrusted_certificate_502(loop, pki, store, mini, tmp_path):
    other = rs.make_pki(tmp_path / "other", ca_name="not the upstream's CA")
    running = Running(loop, other, store, mini.url)  # trusts only `other`'s CA for the upstream
    try:
        status, _, _ = asyncio.run(post(running.url, other, store.enroll("dev")))
    finally:
        running.stop()
    assert status == 502 and "upstream certificate not trusted" in running.lines()[0]


@pytest.mark.parametrize("mode,status,code,upstream", [
    ("unauthorized", 502, "invalid_api_key", "401"),
    ("error", 502, "server_error", "500"),
    ("html", 502, "upstream_error", "502"),
])
def test_upstream_errors_passed_on_without_the_key(relay_mini, mini, pki, store, mode, status, code, upstream):
    mini.mode = mode
    token = store.enroll("dev")
    got, headers, text = asyncio.run(post(relay_mini.url, pki, token))
    assert got == status and headers["X-Rtflash-Upstream-Status"] == upstream
    error = json.loads(text)["error"]
    assert error["code"] == code
    if mode == "unauthorized":  # the upstream quoted the key it got: masked on the way out
        assert "Incorrect API key provided: sk-********" in error["message"]
    assert_clean(text + json.dumps(headers), KEY, token, where="the device's response")
    assert_clean("\n".join(relay_mini.lines()), KEY, token, where="the relay's log")
    assert len(mini.seen) == 1 and mini.seen[0].authorization == f"Bearer {KEY}"


def test_upstream_timeout_504(relay_mini, mini, pki, store):
    mini.delay = 3.0  # upstream_timeout is 1 s
    got, _, text = asyncio.run(post(relay_mini.url, pki, store.enroll("dev")))
    assert got == 504 and json.loads(text)["error"]["code"] == "upstream_timeout"
    assert "upstream timeout" in relay_mini.lines()[0]


def test_standin_html_201_is_502(loop, pki, store):
    with rs.StandInThread(pki, KEY, mode="not_sdp") as server:
        running = Running(loop, pki, store, server.standin.calls_url)
        try:
            got, _, text = asyncio.run(post(running.url, pki, store.enroll("dev")))
        finally:
            running.stop()
    assert got == 502 and json.loads(text)["error"]["code"] == "upstream_not_sdp"


# --- limits under bounded load (correctness, not timing) ---------------------------------------------


def test_load_none_lost_and_rate_limit_per_device(loop, pki, store, mini):
    tokens = [store.enroll(f"d{i}") for i in range(10)]
    running = Running(loop, pki, store, mini.url, limits=LimitConfig(per_minute=0.1, burst=2, concurrent=4))
    try:
        results = asyncio.run(wave(running.url, tokens, 4, pki.client_context()))
    finally:
        running.stop()
    assert Counter(r.status for r in results) == {201: 20, 429: 20}
    assert Counter(r.device for r in results if r.status == 201) == dict.fromkeys(range(10), 2)
    assert len(mini.seen) == 20 and all(s.authorization == f"Bearer {KEY}" for s in mini.seen)
    assert len(running.lines()) == 40


def test_concurrent_bound_per_device(loop, pki, store, mini):
    tokens = [store.enroll(f"d{i}") for i in range(5)]
    mini.delay = 1.0
    running = Running(loop, pki, store, mini.url, limits=LimitConfig(per_minute=600, burst=50, concurrent=1))
    try:
        results = asyncio.run(wave(running.url, tokens, 3, pki.client_context()))
        after = asyncio.run(offer(running.url, tokens[0], pki.client_context(), 0))  # slot free again
    finally:
        running.stop()
    assert Counter(r.status for r in results) == {201: 5, 429: 10} and after.status == 201
    refusal = json.loads(next(r.body for r in results if r.status == 429))["error"]
    assert refusal["code"] == "device_rate_limited" and "concurrent" in refusal["message"]


def test_limits_bucket_refills_and_slots_expire(tmp_path):
    now = [1000.0]
    store = SqliteStore(tmp_path / "s.db", clock=lambda: now[0])
    cfg = LimitConfig(per_minute=6, burst=2, concurrent=5)
    slots = [store.acquire("a", cfg, 30), store.acquire("a", cfg, 30)]
    with pytest.raises(Refused) as refused:
        store.acquire("a", cfg, 30)
    assert refused.value.reason == "rate" and refused.value.retry_after == 10
    store.acquire("b", cfg, 30)  # another device is unaffected
    now[0] += 10.0
    slots.append(store.acquire("a", cfg, 30))
    assert store.in_flight("a") == 3
    for slot in slots:
        store.finish(slot)
    assert store.in_flight("a") == 0
    one = LimitConfig(per_minute=600, burst=50, concurrent=1)
    store.acquire("c", one, 30)  # its process dies holding it: the slot is never released
    with pytest.raises(Refused) as busy:
        store.acquire("c", one, 30)
    assert busy.value.reason == "concurrent"
    now[0] += 31.0  # past its hold: free again
    store.acquire("c", one, 30)


# --- the store ----------------------------------------------------------------------------------------


def test_store_hashes_only_revoke_and_reload(store):
    token = store.enroll("kitchen", "sonatino")
    assert token.startswith("rtd_") and len(token) == 47
    assert token not in store_bytes(store) and token_hash(token) in store_bytes(store)
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in store.files()) and len(store.files()) == 3
    assert store.authenticate(token).name == "kitchen"
    assert store.authenticate("rtd_" + "x" * 43) is None and store.authenticate("") is None
    with pytest.raises(ConfigError, match="already enrolled.*--replace"):
        store.enroll("kitchen")
    reader = Store(store.path)
    assert not reader.authenticate(token).revoked
    store.revoke("kitchen")
    assert reader.authenticate(token).revoked  # the other process sees it at once
    new = store.enroll("kitchen", replace_existing=True)
    assert reader.authenticate(token) is None and not reader.authenticate(new).revoked
    assert reader.get("kitchen").board == "sonatino"
    store.record_use({"kitchen": (token_hash(token), "2025-01-01T00:00:00Z")})  # the old token: ignored
    assert reader.get("kitchen").last_use is None
    with pytest.raises(ConfigError, match="no device named 'nope'.*kitchen"):
        store.revoke("nope")
    with pytest.raises(ConfigError, match="device name"):
        store.enroll("../etc")


def test_store_corrupt_file_is_one_clear_error(store):
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json" + "x" * 200)
    with pytest.raises(ConfigError) as err:
        store.devices()
    assert str(store.path) in str(err.value) and "not a relay store" in str(err.value)
    assert "\n" not in str(err.value)


def test_store_out_of_reach_gives_503(loop, pki, mini):
    """A database that does not answer: the device gets 503 (try again), nothing goes upstream."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    secret = "pg-" + "password-canary"
    running = Running(loop, pki, PostgresStore(f"postgresql://relay:{secret}@127.0.0.1:{port}/rtflash"), mini.url)
    try:
        got, _, body = asyncio.run(post(running.url, pki, "rtd_" + "A" * 43))
    finally:
        running.stop()
    assert got == 503 and mini.seen == [] and "device store" in running.lines()[0]
    assert_clean(body + "\n".join(running.lines()), secret, where="the 503 and the log")


# --- session config -----------------------------------------------------------------------------------


def test_session_precedence_device_over_board_over_defaults():
    s = Settings(model="gpt-realtime", voice="alloy", instructions="Hi.",
                 relay={"boards": {"box": {"voice": "verse", "model": "gpt-realtime-mini"}},
                        "devices": {"kitchen": {"voice": "marin"}}})
    assert session_values(s, "kitchen", "box") == {"model": "gpt-realtime-mini", "voice": "marin", "instructions": "Hi."}
    assert session_values(s, "hall", "box")["voice"] == "verse"
    assert session_values(s, "hall", "") == {"model": "gpt-realtime", "voice": "alloy", "instructions": "Hi."}
    assert session_object(session_values(s, "x", "")) == {"type": "realtime", "model": "gpt-realtime",
                                                          "instructions": "Hi.", "audio": {"output": {"voice": "alloy"}}}


@pytest.mark.parametrize("raw,words", [
    ({"rooms": {}}, "relay.rooms: unknown"),
    ({"devices": {"k": {"temperature": "1"}}}, "relay.devices.k.temperature: unknown"),
    ({"devices": {"k": {"voice": 3}}}, "must be a non-empty string"),
    ({"boards": "box"}, "must be a table"),
])
def test_relay_table_errors(raw, words):
    with pytest.raises(ConfigError, match=words):
        parse_relay_table(raw, Path("rtflash.toml"))


def test_relay_table_in_rtflash_toml(tmp_path):
    (tmp_path / "rtflash.toml").write_text('[relay.devices.kitchen]\nvoice = "marin"\n')
    assert load_settings(tmp_path).relay["devices"] == {"kitchen": {"voice": "marin"}}
    (tmp_path / "rtflash.toml").write_text('[relay.devices.kitchen]\ntoken = "x"\n')
    with pytest.raises(ConfigError, match="relay.devices.kitchen.token: unknown"):
        load_settings(tmp_path)


def test_store_limits_hold_across_forked_workers(tmp_path):
    """`serve --workers N`: the limits live in the store, so N processes admit a device's burst once."""
    import multiprocessing
    import os

    store = SqliteStore(tmp_path / "s.db")
    store.ping()  # made (and its connection opened) before the fork, as `serve` does
    cfg = LimitConfig(per_minute=0.1, burst=3, concurrent=10)
    ctx = multiprocessing.get_context("fork")
    admitted = ctx.Queue()

    def worker() -> None:
        ok = 0
        for _ in range(5):
            try:
                store.acquire("kitchen", cfg, 60)
                ok += 1
            except Refused:
                pass
        admitted.put((os.getpid(), ok))

    procs = [ctx.Process(target=worker) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    results = [admitted.get(timeout=10) for _ in procs]
    assert sum(ok for _, ok in results) == 3 and len({pid for pid, _ in results}) == 3
    assert store.in_flight("kitchen") == 3  # seen from the parent too
    with pytest.raises(Refused) as refused:
        store.acquire("kitchen", cfg, 60)
    assert refused.value.reason == "rate"
    store.acquire("hall", cfg, 60)  # another device has its own bucket


# --- calls in progress: recorded for `relay revoke` ----------------------------------------------------


def test_store_records_prunes_and_forgets_calls(store):
    import datetime

    from rtflash.relay.store import CallRecord

    store.enroll("kitchen")
    store.enroll("hall")
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=61)).strftime("%Y-%m-%dT%H:%M:%SZ")
    up = "https://127.0.0.1:1/v1/realtime/calls"
    calls = [CallRecord("kitchen", "rtc_a", now_iso(), up, "/ca.pem"), CallRecord("kitchen", "rtc_old", old, up),
             CallRecord("hall", "rtc_b", now_iso(), up), CallRecord("kitchen", "../x", now_iso(), up)]
    assert store.record_calls(calls) == []
    reader = Store(store.path)  # another process
    assert [c.call_id for c in reader.calls_of("kitchen")] == ["rtc_a"]  # the 61-minute-old one is over
    assert reader.calls_of("kitchen")[0] == calls[0] and [c.call_id for c in reader.calls_of("hall")] == ["rtc_b"]
    text = store_bytes(store)
    assert "../x" not in text and "rtc_a" in text
    store.record_use({"hall": (store.get("hall").token_sha256, now_iso())})  # device writes leave the calls be
    assert [c.call_id for c in reader.calls_of("hall")] == ["rtc_b"]
    store.revoke("hall")  # a call of a device revoked by now is not recorded: returned for the relay to hang up
    late, gone = CallRecord("hall", "rtc_late", now_iso(), up), CallRecord("gone", "rtc_c", now_iso(), up)
    assert store.record_calls([late, gone]) == [late, gone]
    assert [c.call_id for c in reader.calls_of("hall")] == ["rtc_b"]
    store.forget_calls("kitchen", {"rtc_a", "rtc_b"})  # only kitchen's
    assert reader.calls_of("kitchen") == [] and [c.call_id for c in reader.calls_of("hall")] == ["rtc_b"]


def test_call_id_and_hangup_url():
    from rtflash.relay.calls import call_id_from, hangup_url

    assert call_id_from("/v1/realtime/calls/rtc_abc123") == "rtc_abc123"
    assert call_id_from("https://api.openai.com/v1/realtime/calls/rtc_x/") == "rtc_x"
    assert call_id_from("") is None and call_id_from("/v1/realtime/calls/a%2F..") is None
    assert hangup_url("https://api.openai.com/v1/realtime/calls", "rtc_x") == \
        "https://api.openai.com/v1/realtime/calls/rtc_x/hangup"
    assert hangup_url("https://gw.lan:8443/openai/v1/realtime/calls/?x=1", "rtc_y") == \
        "https://gw.lan:8443/openai/v1/realtime/calls/rtc_y/hangup"


def test_relay_records_each_answered_call_without_secrets(loop, pki, store, mini):
    token = store.enroll("dev")
    running = Running(loop, pki, store, mini.url)
    try:
        results = asyncio.run(wave(running.url, [token], 2, pki.client_context()))
        loop.run(running.relay.hangups.drain())
    finally:
        running.stop()
    assert [r.status for r in results] == [201, 201]
    recorded = Store(store.path).calls_of("dev")
    assert sorted(c.call_id for c in recorded) == [f"rtc_{i:032x}" for i in (1, 2)]  # MiniUpstream's Locations
    assert all(c.upstream == mini.url and c.upstream_ca == str(pki.ca_file) for c in recorded)
    assert_clean(store_bytes(store), KEY, token, where="the store files")


def test_device_revoked_during_set_up_has_its_call_hung_up_by_the_relay(loop, pki, store):
    """Authenticated before the revoke, answered after it: the revoke cannot have seen the call, so the
    store refuses to record it and the relay hangs it up itself."""
    token = store.enroll("dev")
    with rs.StandInThread(pki, KEY, play="silence", mode="slow", slow_seconds=1.0) as server:
        running = Running(loop, pki, store, server.standin.calls_url)
        try:
            async def device() -> rs.ClientCall:
                pending = asyncio.ensure_future(rs.client_call(running.url, token, "m", pki.client_context(),
                                                               rs.silence))
                await asyncio.sleep(0.4)  # the offer is at the (slow) upstream now
                Store(store.path).revoke("dev")
                call = await pending
                await call.close()
                return call

            call = asyncio.run(device())
            loop.run(running.relay.hangups.drain())
            stand = server.standin.calls[0]
            ended = server.wait_until(lambda: stand.state == "closed", 5)
        finally:
            running.stop()
    assert call.status == 201 and ended and stand.hung_up is not None
    assert server.standin.hangups[0].headers["Authorization"] == f"Bearer {KEY}"
    assert Store(store.path).calls_of("dev") == []
    assert any(f"dev: revoked during the call's set-up; hung up call {stand.id}" in ln for ln in running.lines())
    assert_clean("\n".join(running.lines()), KEY, token, where="the relay's log")


# --- slow clients at the connection level ------------------------------------------------------------


def stall(port: int, pki: rs.Pki | None, send: bytes, limit: float) -> tuple[float, bytes, int]:
    """Connect to 127.0.0.1:port (TLS handshake first when `pki`, else none at all), send `send`, then
    wait for the server to close: (seconds until closed, what came back, our local port)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=limit)
    local = raw.getsockname()[1]
    sock = pki.client_context().wrap_socket(raw, server_hostname="127.0.0.1") if pki else raw
    t0 = time.monotonic()
    got = b""
    try:
        if send:
            sock.sendall(send)
        while time.monotonic() - t0 < limit:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    except (ConnectionError, OSError):  # a reset, or the TLS layer seeing the abort: closed either way
        pass
    finally:
        sock.close()
    return time.monotonic() - t0, got, local


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"], indirect=True)
@pytest.mark.parametrize("tls", [True, False])
def test_slow_clients_are_closed_while_offers_are_served(loop, pki, store, mini, tls):
    from concurrent.futures import ThreadPoolExecutor

    token = store.enroll("dev")
    timeout = 1.0
    running = Running(loop, pki, store, mini.url, tls=tls, read_timeout=timeout)
    port = int(running.url.split(":")[2].split("/")[0])
    half = b"POST /v1/realtime/calls HT"  # half a request line, then nothing
    try:
        with ThreadPoolExecutor(3) as pool:
            no_handshake = pool.submit(stall, port, None, b"", timeout + 4)  # TCP only: never a ClientHello
            no_headers = pool.submit(stall, port, pki if tls else None, half, timeout + 4)
            headers_cut = pool.submit(stall, port, pki if tls else None,
                                      b"POST /v1/realtime/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bea",
                                      timeout + 4)
            time.sleep(0.3)
            scheme_ctx = pki.client_context() if tls else None
            served = asyncio.run(offer(running.url, token, scheme_ctx, 0))  # meanwhile: served at once
            results = [f.result(timeout + 6) for f in (no_handshake, no_headers, headers_cut)]
    finally:
        running.stop()
    assert served.status == 201 and served.ms < 1000
    for waited, got, _ in results:
        assert timeout - 0.2 < waited < timeout + 1.0 and got == b""  # closed, nothing sent back
    lines = running.lines()
    first = "no TLS handshake" if tls else "no request headers"
    assert f"WARNING slow client 127.0.0.1:{results[0][2]}: {first} in 1 s" in lines
    for _, _, local in results[1:]:
        assert f"WARNING slow client 127.0.0.1:{local}: no request headers in 1 s" in lines
    assert sum("slow client" in ln for ln in lines) == 3 and running.relay.deadlines.slow == 3
    assert_clean("\n".join(lines), KEY, token, where="the relay's log")


@pytest.mark.parametrize("loop", ["uvloop"], indirect=True)
def test_on_uvloop_a_client_hello_read_before_start_tls_is_not_lost(loop, pki, store, mini):
    """uvloop reads a new connection at once, whatever its first protocol did: a ClientHello that arrives
    before start_tls has the transport lands in the gate, which hands it on. Fresh TLS connections one
    after the other (each sends its ClientHello at once, as a device does): every one served."""
    token = store.enroll("dev")
    running = Running(loop, pki, store, mini.url, limits=LimitConfig(per_minute=6000, burst=100, concurrent=2))
    try:
        async def many() -> list:
            out = []
            for _ in range(40):
                out.append(await offer(running.url, token, pki.client_context(), 0))
            return out

        results = asyncio.run(many())
    finally:
        running.stop()
    assert [r.status for r in results] == [201] * 40, {r.body for r in results if r.status != 201}
    assert running.relay.deadlines.slow == 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"], indirect=True)
def test_clients_that_leave_or_speak_no_tls_are_not_called_slow(loop, pki, store, mini):
    """A TCP health check (connect, close) and plain HTTP on the TLS port: dropped at once, no slow line."""
    running = Running(loop, pki, store, mini.url, read_timeout=1.0)
    port = int(running.url.split(":")[2].split("/")[0])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        waited, got, _ = stall(port, None, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 4.0)
        time.sleep(1.5)  # past the deadlines: nothing is left to time out
        status = asyncio.run(offer(running.url, store.enroll("dev"), pki.client_context(), 0)).status
    finally:
        running.stop()
    assert waited < 0.9 and b"200" not in got and status == 201
    assert running.relay.deadlines.slow == 0 and not any("slow client" in ln for ln in running.lines())


# --- health and metrics -----------------------------------------------------------------------------------


async def get(url: str, pki: rs.Pki) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
            http.get(url, ssl=pki.client_context()) as r:
        return r.status, dict(r.headers), await r.text()


def test_healthz_and_metrics_count_offers_refusals_and_reused_upstream_connections(loop, pki, store, mini):
    tokens = [store.enroll(f"d{i}") for i in range(3)]
    running = Running(loop, pki, store, mini.url, limits=LimitConfig(per_minute=0.1, burst=2, concurrent=4))
    base = running.url.removesuffix("/v1/realtime/calls")
    try:
        status, _, text = asyncio.run(get(base + "/healthz", pki))
        health = json.loads(text)
        for tok in tokens:  # one after another: the upstream connection is kept alive between them
            for _ in range(3):
                asyncio.run(offer(running.url, tok, pki.client_context(), 0))
        asyncio.run(post(running.url, pki, "rtd_" + "B" * 43))  # unknown: 401, nothing upstream
        got, headers, metrics = asyncio.run(get(base + "/metrics", pki))
    finally:
        running.stop()
    assert status == 200 and health["status"] == "ok" and health["store"] == "ok" and health["upstream"] == "ok"
    assert health["version"]
    assert got == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = dict(ln.rsplit(" ", 1) for ln in metrics.splitlines() if ln and not ln.startswith("#"))
    assert lines['rtflash_relay_offers_total{worker="0"}'] == "10"
    assert lines['rtflash_relay_responses_total{worker="0",status="201"}'] == "6"
    assert lines['rtflash_relay_responses_total{worker="0",status="429"}'] == "3"
    assert lines['rtflash_relay_responses_total{worker="0",status="401"}'] == "1"
    assert lines['rtflash_relay_limit_refusals_total{worker="0",reason="rate"}'] == "3"
    assert lines['rtflash_relay_upstream_connections_total{worker="0",connection="new"}'] == "1"
    assert lines['rtflash_relay_upstream_connections_total{worker="0",connection="reused"}'] == "5"
    assert lines['rtflash_relay_upstream_seconds_count{worker="0"}'] == "6"
    assert lines['rtflash_relay_upstream_seconds_bucket{worker="0",le="+Inf"}'] == "6"
    assert_clean(metrics, KEY, *tokens, *(token_hash(t) for t in tokens), "d0", where="the metrics")


def test_healthz_says_what_is_out_of_reach(loop, pki, store):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    running = Running(loop, pki, store, f"https://127.0.0.1:{port}/v1/realtime/calls")
    try:
        status, _, text = asyncio.run(get(running.url.removesuffix("/v1/realtime/calls") + "/healthz", pki))
    finally:
        running.stop()
    health = json.loads(text)
    assert status == 503 and health["status"] == "degraded" and health["store"] == "ok"
    assert health["upstream"].startswith(f"127.0.0.1:{port}: ") and "refused" in health["upstream"].lower()


@pytest.mark.parametrize("behind_proxy,logged", [(True, "from 192.0.2.1)"), (False, "from 127.0.0.1)")])
def test_device_address_from_x_forwarded_for_only_behind_a_proxy(loop, pki, store, mini, behind_proxy, logged):
    """Behind a proxy the last X-Forwarded-For entry (the one the proxy on this host added) is the device's
    address; without --behind-proxy the header is a client's word and ignored."""
    running = Running(loop, pki, store, mini.url, tls=False, behind_proxy=behind_proxy)

    async def go() -> int:
        async with aiohttp.ClientSession() as http, http.post(
                running.url, data=b"v=0\r\n", headers={"Authorization": "Bearer rtd_" + "D" * 43,
                                                       "Content-Type": "application/sdp",
                                                       "X-Forwarded-For": "198.51.100.7, 192.0.2.1"}) as r:
            return r.status

    try:
        status = asyncio.run(go())
    finally:
        running.stop()
    assert status == 401 and any(f"unknown token ({logged}" in ln for ln in running.lines()), running.lines()
