"""The relay's store on SQLite and on a real PostgreSQL server (testkit/postgres.py), on 127.0.0.1 only.

The same behaviour from both; the JSON store of earlier versions imported once (`relay migrate`) and
refused, with that command, until it is; a crash (SIGKILL) in the middle of enrolls, revokes and
offers leaves every device whole or absent and every revoke in place; two relay processes on one
PostgreSQL share revocation and a device's concurrency limit."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.relay_bench import LoopThread, MiniUpstream, RelayProcess, offer
from rtflash.errors import ConfigError
from rtflash.relay.limits import LimitConfig, Refused
from rtflash.relay.sqlstore import PostgresStore, SqliteStore
from rtflash.relay.sqlstore import open_store
from rtflash.relay.store import CallRecord, new_token, now_iso, token_hash
from testkit import postgres
from testkit import realtime_standin as rs

KEY = "sk-" + "sqlstore-KEY-canary-0123456789"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> rs.Pki:
    return rs.make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request, tmp_path) -> str:
    """The store's location, as --store / $RTFLASH_RELAY_STORE take it."""
    if request.param == "sqlite":
        return str(tmp_path / "relay-devices.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def upstream(pki):
    loop = LoopThread()
    up = MiniUpstream(pki, api_key=KEY)
    loop.run(up.start())
    yield up
    loop.run(up.stop())
    loop.close()


def test_both_stores_keep_hashes_revoke_and_limits(where):
    store, other = open_store(where), open_store(where)  # `other`: another process's view
    assert isinstance(store, PostgresStore if where.startswith("postgresql") else SqliteStore)
    token = store.enroll("kitchen", "sonatino")
    assert other.authenticate(token).name == "kitchen" and other.authenticate(new_token()) is None
    assert other.find("kitchen").token_sha256 == token_hash(token) and other.find("nope") is None
    with pytest.raises(ConfigError, match="already enrolled.*--replace"):
        store.enroll("kitchen")
    other.revoke("kitchen")
    assert store.authenticate(token).revoked and store.get("kitchen").revoked_at
    new = store.enroll("kitchen", replace_existing=True)
    assert other.authenticate(token) is None and not other.authenticate(new).revoked
    assert other.get("kitchen").board == "sonatino"
    store.record_use({"kitchen": (token_hash(new), "2026-01-01T00:00:00Z"), "gone": (token_hash(new), now_iso())})
    assert other.get("kitchen").last_use == "2026-01-01T00:00:00Z"
    with pytest.raises(ConfigError, match="no device named 'hall'.*kitchen"):
        store.revoke("hall")
    up = "https://127.0.0.1:1/v1/realtime/calls"
    calls = [CallRecord("kitchen", "rtc_a", now_iso(), up), CallRecord("hall", "rtc_b", now_iso(), up)]
    assert store.record_calls(calls) == [calls[1]]  # no device hall: not recorded, handed back
    assert other.calls_of("kitchen") == [calls[0]]
    other.forget_calls("kitchen", {"rtc_a"})
    assert store.calls_of("kitchen") == []
    cfg = LimitConfig(per_minute=0.1, burst=2, concurrent=1)
    slot = store.acquire("kitchen", cfg, 30)
    with pytest.raises(Refused) as busy:
        other.acquire("kitchen", cfg, 30)
    assert busy.value.reason == "concurrent" and other.in_flight("kitchen") == 1
    store.finish(slot)
    other.finish(other.acquire("kitchen", cfg, 30))
    with pytest.raises(Refused) as rate:
        store.acquire("kitchen", cfg, 30)
    assert rate.value.reason == "rate" and rate.value.retry_after > 60
    store.ping()


def test_a_slot_its_process_never_released_expires_after_its_hold(where):
    """A process that dies mid-offer never releases its concurrency slot: on either store, by the store's
    own clock (PostgreSQL: the server's), the device is refused while the slot holds and admitted again,
    by another process, once its hold is over; and not before."""
    store, other = open_store(where), open_store(where)
    one = LimitConfig(per_minute=600, burst=50, concurrent=1)
    hold = 1.5
    start = time.monotonic()
    store.acquire("kitchen", one, hold)  # never released
    store.close()  # its process is gone
    with pytest.raises(Refused) as busy:
        other.acquire("kitchen", one, hold)
    assert busy.value.reason == "concurrent" and other.in_flight("kitchen") == 1
    refused_at = []
    while True:  # bounded: the hold is 1.5 s; 10 s is a failure, not a wait
        try:
            slot = other.acquire("kitchen", one, 30)
            break
        except Refused as again:
            assert again.reason == "concurrent" and time.monotonic() - start < 10, "the slot never expired"
            refused_at.append(time.monotonic() - start)
            time.sleep(0.05)
    admitted_at = time.monotonic() - start
    assert admitted_at >= hold - 0.05 and refused_at and max(refused_at) < admitted_at
    assert other.in_flight("kitchen") == 1  # the new slot only: the expired one no longer counts
    other.finish(slot)
    assert other.in_flight("kitchen") == 0


def test_admit_authenticates_and_takes_a_slot_in_one_write(where):
    """The relay's first write of an offer: the token's device and its limits in one transaction."""
    store, other = open_store(where), open_store(where)
    token = store.enroll("kitchen")
    cfg = LimitConfig(per_minute=0.1, burst=2, concurrent=1)
    assert store.admit(new_token(), cfg, 30) == (None, "") and store.admit("not-a-token", cfg, 30) == (None, "")
    device, slot = store.admit(token, cfg, 30)
    assert device.name == "kitchen" and isinstance(slot, str) and slot and other.in_flight("kitchen") == 1
    device, busy = other.admit(token, cfg, 30)  # another process: the concurrency slot is taken
    assert isinstance(busy, Refused) and busy.reason == "concurrent"
    assert other.finish(slot)
    device, slot = other.admit(token, cfg, 30)
    assert isinstance(slot, str) and other.finish(slot)
    _, rate = store.admit(token, cfg, 30)  # the burst of 2 is spent
    assert isinstance(rate, Refused) and rate.reason == "rate"
    other.revoke("kitchen")
    device, none = store.admit(token, cfg, 30)
    assert device.revoked and none == "" and store.in_flight("kitchen") == 0


def test_finish_releases_and_records_in_one_write_and_prune_drops_what_is_over(where):
    """The end of an offer is one transaction (the relay's CPU per offer): its slot released and its
    call recorded; a call of a device revoked meanwhile is refused (False: the relay hangs it up) but
    its slot is still released. prune (the relay's periodic flush) drops hour-old calls and expired
    slots, which offers no longer delete themselves."""
    import datetime

    store, other = open_store(where), open_store(where)
    store.enroll("kitchen")
    store.enroll("hall")
    cfg = LimitConfig(per_minute=600, burst=50, concurrent=1)
    up = "https://127.0.0.1:1/v1/realtime/calls"
    call = CallRecord("kitchen", "rtc_a", now_iso(), up, "/ca.pem")
    assert store.finish(store.acquire("kitchen", cfg, 30), call) is True
    assert other.in_flight("kitchen") == 0 and other.calls_of("kitchen") == [call]
    assert store.finish(store.acquire("kitchen", cfg, 30)) is True  # an offer that set up no call
    assert other.in_flight("kitchen") == 0 and other.calls_of("kitchen") == [call]
    slot = store.acquire("hall", cfg, 30)
    other.revoke("hall")  # while the offer is upstream
    assert store.finish(slot, CallRecord("hall", "rtc_b", now_iso(), up)) is False
    assert other.in_flight("hall") == 0 and other.calls_of("hall") == []
    assert store.finish(store.acquire("kitchen", cfg, 30), CallRecord("kitchen", "../x", now_iso(), up)) is True
    assert other.calls_of("kitchen") == [call]  # not a call id: never stored

    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=61)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert store.record_calls([CallRecord("kitchen", "rtc_old", old, up)]) == []
    store.acquire("kitchen", cfg, 0.01)  # its process dies holding it
    time.sleep(0.1)
    count = lambda table: other._read(f"SELECT COUNT(*) FROM {table}")[0][0]  # noqa: E731 - rows, over or not
    assert count("calls") == 2 and count("flights") == 1
    other.prune()
    assert count("calls") == 1 and count("flights") == 0
    assert other.calls_of("kitchen") == [call]


def test_postgres_store_errors_name_the_store_without_its_password(pg_server):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = pg_server.url().replace(f":{pg_server.port}/", f":{port}/")
    with pytest.raises(ConfigError) as err:
        PostgresStore(url).devices()
    text = str(err.value)
    assert postgres.PASSWORD not in text and f"rtflash:***@127.0.0.1:{port}/postgres" in text
    assert "\n" not in text and "reachable" in text
    with pytest.raises(ConfigError) as err:
        PostgresStore(pg_server.url().replace("canary", "wrong")).devices()
    assert "password authentication failed" in str(err.value) and "relay-wrong" not in str(err.value)


# --- the JSON store of earlier versions -----------------------------------------------------------------


def old_json_store(path: Path) -> dict[str, str]:
    """Write a JSON store as earlier rtflash versions did (and its calls file); returns name -> token."""
    tokens = {"kitchen": new_token(), "hall": new_token()}
    devices = [{"name": "kitchen", "token_sha256": token_hash(tokens["kitchen"]), "board": "sonatino",
                "created": "2026-01-01T00:00:00Z", "last_use": "2026-01-02T00:00:00Z", "revoked": False,
                "revoked_at": None},
               {"name": "hall", "token_sha256": token_hash(tokens["hall"]), "board": "", "created":
                "2026-01-01T00:00:00Z", "last_use": None, "revoked": True, "revoked_at": "2026-01-03T00:00:00Z"}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": 1, "devices": devices}))
    calls = [{"device": "kitchen", "call_id": "rtc_live", "started": now_iso(), "upstream": "https://x/v1/realtime/calls",
              "upstream_ca": ""}]
    path.with_name(path.stem + ".calls.json").write_text(json.dumps({"version": 1, "calls": calls}))
    return tokens


def test_relay_on_an_old_json_store_says_how_then_migrate_imports_it_once(invoke, project, monkeypatch):
    old = project / "cfg" / "relay-devices.json"
    monkeypatch.setenv("RTFLASH_RELAY_STORE", str(old))
    monkeypatch.setenv("RTFLASH_SECRETS_FILE", str(project / "secrets.toml"))
    monkeypatch.delenv("RTFLASH_OPENAI_API_KEY", raising=False)
    tokens = old_json_store(old)
    for args in (("relay", "serve", "--behind-proxy", "--port", "0"), ("relay", "devices"), ("relay", "enroll", "x")):
        refused = invoke(*args)
        assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and f"rtflash relay migrate --from {old}" in lines[0] and "old JSON store" in lines[0]
    done = invoke("relay", "migrate", "--from", str(old))
    assert done.exit_code == 0, done.stderr
    assert "imported 2 device(s) and 1 call(s)" in done.stderr and str(old.with_suffix(".db")) in done.stderr
    rows = {r["name"]: r for r in json.loads(invoke("relay", "devices", "--json").stdout)}
    assert rows["kitchen"]["board"] == "sonatino" and rows["kitchen"]["last_use"] == "2026-01-02T00:00:00Z"
    assert rows["hall"]["revoked"] and rows["hall"]["revoked_at"] == "2026-01-03T00:00:00Z"
    store = open_store(old)
    assert store.authenticate(tokens["kitchen"]).name == "kitchen" and store.authenticate(tokens["hall"]).revoked
    assert [c.call_id for c in store.calls_of("kitchen")] == ["rtc_live"]
    again = invoke("relay", "migrate", "--from", str(old))
    assert again.exit_code == 1 and "already imported" in again.stderr
    serve = invoke("relay", "serve", "--behind-proxy", "--port", "0")  # past the store: now the missing key
    assert serve.exit_code == 1 and "OpenAI API key is not set" in serve.stderr
    (project / "bad.json").write_text("[1, 2]")
    bad = invoke("relay", "migrate", "--from", str(project / "bad.json"))
    assert bad.exit_code == 1 and "not a readable rtflash JSON device store" in bad.stderr
    assert "Traceback" not in bad.output


def test_migrate_into_postgres(invoke, project, pg_url, monkeypatch):
    old = project / "old" / "relay-devices.json"
    tokens = old_json_store(old)
    monkeypatch.setenv("RTFLASH_SECRETS_FILE", str(project / "secrets.toml"))
    done = invoke("relay", "migrate", "--from", str(old), "--store", pg_url)
    assert done.exit_code == 0, done.stderr
    assert postgres.PASSWORD not in done.output and "rtflash:***@127.0.0.1" in done.stderr
    assert PostgresStore(pg_url).authenticate(tokens["kitchen"]).board == "sonatino"
    listed = invoke("relay", "devices", "--store", pg_url)
    assert "kitchen" in listed.stdout and "revoked 2026-01-03T00:00:00Z" in listed.stdout


# --- a crash in the middle of changes -----------------------------------------------------------------

WRITER = """
import sys
from rtflash.relay.sqlstore import open_store
from rtflash.relay.store import new_token
store = open_store(sys.argv[1])
for i in range(100):
    sys.stdin.readline()  # the test paces it: one device per line
    name, token = f"dev-{i:03d}", new_token()
    print("try", name, token, flush=True)
    store.enroll(name, "sonatino", token=token)
    print("enrolled", name, flush=True)
    if i % 2:
        store.revoke(name)
        print("revoked", name, flush=True)
"""


def test_sigkill_mid_enrolls_revokes_and_offers_leaves_every_device_whole(where, pki, upstream, tmp_path):
    """The relay (serving offers: last use, calls, limit slots) and a process enrolling and revoking 100
    devices on the same store are SIGKILLed half-way; after a restart every device is enrolled with its
    own token or absent, and every revoked one is refused."""
    relay = RelayProcess(tmp_path, pki, upstream.url, where, "--rate", "600", "--burst", "100", key=KEY)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, where], stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                              text=True)
    tried: dict[str, str] = {}
    enrolled, revoked = set(), set()
    statuses: Counter[int] = Counter()
    ctx = pki.client_context()
    try:
        assert writer.stdout is not None and writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
        while len(enrolled) < 50:
            kind, name, *rest = writer.stdout.readline().split()
            if kind == "try":
                tried[name] = rest[0]
            elif kind == "enrolled":
                enrolled.add(name)
                statuses[asyncio.run(offer(relay.url, tried[name], ctx, 0)).status] += 1
                writer.stdin.write("go\n")
                writer.stdin.flush()
            else:
                revoked.add(name)
        # now let it run free, with offers of the last devices in flight at the relay, and kill both
        writer.stdin.write("go\n" * 50)
        writer.stdin.flush()
        tokens = [tried[n] for n in sorted(enrolled)[-10:]]

        async def burst_then_kill() -> None:
            jobs = [asyncio.ensure_future(offer(relay.url, t, ctx, 0)) for t in tokens]
            await asyncio.sleep(0.05)
            relay.proc.send_signal(signal.SIGKILL)
            writer.send_signal(signal.SIGKILL)
            await asyncio.gather(*jobs)

        asyncio.run(burst_then_kill())
    finally:
        writer.wait(10)
        relay.proc.wait(10)
        relay.stop()
    for line in writer.stdout.read().splitlines():  # what it printed before the kill
        kind, name, *rest = line.split()
        if kind == "try":
            tried[name] = rest[0]
        else:
            (enrolled if kind == "enrolled" else revoked).add(name)
    assert 50 <= len(enrolled) <= 100 and revoked and statuses[201] >= 25 and set(statuses) <= {201, 401}
    if not where.startswith("postgresql"):
        with sqlite3.connect(where) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = open_store(where)
    found = store.devices()
    for name, token in tried.items():
        dev = found.get(name)
        assert dev is None or (dev.token_sha256 == token_hash(token) and dev.board == "sonatino"), name
        assert (dev is not None) >= (name in enrolled)
        assert (dev is not None and dev.revoked) >= (name in revoked)
    assert set(found) <= set(tried)
    # restarted on the same store: the revoked get 401, the others 201
    again = RelayProcess(tmp_path, pki, upstream.url, where, "--rate", "600", "--burst", "100", key=KEY)
    try:
        sample = sorted(revoked)[:5] + sorted(enrolled - revoked)[:5]
        got = {n: asyncio.run(offer(again.url, tried[n], pki.client_context(), 0)).status for n in sample}
    finally:
        log = again.stop()
    assert got == {n: 401 if n in revoked else 201 for n in sample}, log
    assert all(t not in log for t in tried.values()) and KEY not in log


# --- two relays on one PostgreSQL ----------------------------------------------------------------------


def test_two_relays_on_one_postgres_share_revocation_and_the_concurrency_limit(pg_url, pki, upstream, tmp_path):
    store = PostgresStore(pg_url)
    kitchen, hall = store.enroll("kitchen"), store.enroll("hall")
    upstream.delay = 0.1
    opts = ("--rate", "6000", "--burst", "1000", "--concurrent", "1")
    a = RelayProcess(tmp_path, pki, upstream.url, pg_url, *opts, key=KEY)
    b = RelayProcess(tmp_path, pki, upstream.url, pg_url, *opts, key=KEY)
    try:
        ctx = pki.client_context()

        async def load() -> list:
            async def one(i: int):
                await asyncio.sleep(i * 0.02)  # 100 offers over 2 s: many overlap each 0.1 s upstream call
                return await offer((a.url, b.url)[i % 2], kitchen, ctx, i)

            return list(await asyncio.gather(*(one(i) for i in range(100))))

        results = asyncio.run(load())
        peak = upstream.peak
        assert asyncio.run(offer(a.url, hall, ctx, 0)).status == 201
        subprocess.run([str(Path(sys.executable).parent / "rtflash"), "relay", "revoke", "hall", "--store", pg_url],
                       capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL,
                       env={"PATH": "/usr/bin:/bin", "RTFLASH_SECRETS_FILE": str(tmp_path / "none.toml"),
                            "HOME": str(tmp_path)})
        refused = asyncio.run(offer(b.url, hall, ctx, 0))
    finally:
        logs = a.stop() + b.stop()
    statuses = Counter(r.status for r in results)
    assert len(results) == 100 and set(statuses) <= {201, 429} and statuses[201] >= 5, statuses
    assert peak == 1  # exactly one offer of the device at the upstream at any time, across both relays
    assert {r.device % 2 for r in results if r.status == 201} == {0, 1}  # both relays admitted some
    assert refused.status == 401 and json.loads(refused.body)["error"]["code"] == "device_revoked"
    assert postgres.PASSWORD not in logs and kitchen not in logs and KEY not in logs
    assert store.in_flight("kitchen") == 0
