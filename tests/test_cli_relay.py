"""`rtflash relay serve|enroll|devices|revoke` and `provision --relay` as users run them: CliRunner for the
commands and their errors, and the installed script serving a real call in front of the stand-in."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from bench.relay_bench import RelayProcess
from rtflash.relay.sqlstore import open_store
from rtflash.relay.store import store_location, token_hash
from testkit import realtime_standin as rs
from testkit.shared import need_installed

KEY = "sk-" + "cli-relay-KEY-canary-0123456789"


def Store(path: Path):
    return open_store(path)


def store_files(path: Path) -> list[Path]:
    db = Path(store_location(path))
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]


def store_text(path: Path) -> str:
    """All the store holds on disk (SQLite file and WAL), for the secret scans."""
    return "".join(p.read_bytes().decode("latin-1") for p in store_files(path))


@pytest.fixture
def relay_env(project, monkeypatch):
    store = project / "cfg" / "relay-devices.json"
    monkeypatch.setenv("RTFLASH_RELAY_STORE", str(store))
    monkeypatch.setenv("RTFLASH_SECRETS_FILE", str(project / "secrets.toml"))
    monkeypatch.delenv("RTFLASH_RELAY_TOKEN", raising=False)
    return store


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> rs.Pki:
    return rs.make_pki(tmp_path_factory.mktemp("pki"))


def test_enroll_prints_token_once_and_stores_its_hash(invoke, relay_env):
    result = invoke("relay", "enroll", "kitchen", "--board", "sonatino")
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("rtd_") and token not in result.stderr and "shown once" in result.stderr
    text = store_text(relay_env)
    assert token not in text and token_hash(token) in text
    assert store_files(relay_env) and all((p.stat().st_mode & 0o777) == 0o600 for p in store_files(relay_env))
    again = invoke("relay", "enroll", "kitchen")
    assert again.exit_code == 1 and "already enrolled" in again.stderr and "--replace" in again.stderr
    assert again.stdout == ""
    new = invoke("relay", "enroll", "kitchen", "--replace")
    assert new.exit_code == 0 and new.stdout.strip() != token
    assert Store(relay_env).authenticate(token) is None


def test_devices_and_revoke(invoke, relay_env):
    assert "no device enrolled" in invoke("relay", "devices").stderr
    invoke("relay", "enroll", "kitchen", "--board", "sonatino")
    invoke("relay", "enroll", "hall")
    listed = invoke("relay", "devices")
    assert listed.exit_code == 0 and "kitchen" in listed.stdout and "sonatino" in listed.stdout
    assert "last use never" in listed.stdout and "active" in listed.stdout
    revoked = invoke("relay", "revoke", "kitchen")
    assert revoked.exit_code == 0 and "next call is refused (401)" in revoked.stderr
    rows = json.loads(invoke("relay", "devices", "--json").stdout)
    assert {r["name"]: r["revoked"] for r in rows} == {"kitchen": True, "hall": False}
    assert all("token_sha256" not in r for r in rows)
    unknown = invoke("relay", "revoke", "garage")
    assert unknown.exit_code == 1 and "no device named 'garage'" in unknown.stderr and "hall, kitchen" in unknown.stderr
    assert "Traceback" not in unknown.output


@pytest.mark.parametrize("args,code,words", [
    (["relay", "serve"], 2, "--cert FILE --key FILE"),
    (["relay", "serve", "--behind-proxy", "--host", "0.0.0.0"], 2, "127.0.0.1 only"),
    (["relay", "serve", "--behind-proxy", "--upstream", "http://127.0.0.1:1/v1/realtime/calls"], 2, "must be https"),
    (["relay", "enroll", "../x"], 1, "device name '../x'"),
    (["relay", "enroll", "x", "--board", "nosuch"], 1, "nosuch"),
])
def test_relay_bad_input(invoke, relay_env, args, code, words):
    result = invoke(*args)
    assert result.exit_code == code and words in result.stderr and "Traceback" not in result.output


def test_serve_bad_certificate_and_missing_key(invoke, relay_env, project, pki):
    (project / "bad.pem").write_text("not a certificate\n")
    result = invoke("relay", "serve", "--cert", str(project / "bad.pem"), "--key", str(pki.key_file))
    assert result.exit_code == 1 and "cannot load the certificate" in result.stderr
    result = invoke("relay", "serve", "--behind-proxy", "--port", "0")
    assert result.exit_code == 1 and "OpenAI API key is not set" in result.stderr


# --- provision --relay ------------------------------------------------------------------------------


@pytest.fixture
def wifi(monkeypatch):
    monkeypatch.setenv("WIFI_SSID", "Home")
    monkeypatch.setenv("WIFI_PASSWORD", "canary-pw-42")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # present, and still never written in relay mode


def test_provision_relay_image_holds_token_url_ca_and_no_key(invoke, relay_env, project, pki, wifi):
    out = project / "private" / "nvs.bin"
    result = invoke("provision", "--board", "sonatino", "--out", str(out), "--relay",
                    "https://relay.lan:8443/v1/realtime/calls", "--device", "kitchen", "--relay-ca", str(pki.ca_file))
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    # the read-flash proof, on the image `provision --out` writes: the API key's bytes are nowhere in it
    assert KEY.encode() not in data and b"sk-" not in data and b"api_key" not in data
    revealed = json.loads(invoke("nvs", "show", str(out), "--reveal", "--json").stdout)
    values = {i["key"]: i["value"] for i in revealed["items"]}
    assert values["relay_url"] == "https://relay.lan:8443/v1/realtime/calls"
    der = ssl.PEM_cert_to_DER_cert(pki.ca_file.read_text())
    assert base64.b64decode(values["relay_ca"]) == der and "api_key" not in values
    token = values["relay_token"]
    device = Store(relay_env).authenticate(token)
    assert device is not None and device.name == "kitchen" and device.board == "sonatino"
    assert token not in result.output and token not in store_text(relay_env)
    shown = invoke("nvs", "show", str(out))
    assert "relay_token" in shown.stdout and token not in shown.output  # masked without --reveal
    # provisioning again replaces the token: the old one stops working
    assert invoke("provision", "--board", "sonatino", "--out", str(out), "--relay",
                  "https://relay.lan:8443/v1/realtime/calls", "--device", "kitchen").exit_code == 0
    assert Store(relay_env).authenticate(token) is None


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_provision_relay_enrolls_in_the_store_rtflash_toml_names(invoke, project, wifi, monkeypatch, request, kind):
    """`[relay] store` in rtflash.toml (no --store, no $RTFLASH_RELAY_STORE): provision --relay checks and
    enrolls the device there, as `relay serve` on this project reads it, and never in the default file."""
    monkeypatch.delenv("RTFLASH_RELAY_STORE", raising=False)
    monkeypatch.delenv("RTFLASH_RELAY_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(project / "xdg"))  # where the default store would go
    where = str(project / "fleet" / "relay.db") if kind == "sqlite" else request.getfixturevalue("pg_url")
    (project / "rtflash.toml").write_text(f'[relay]\nstore = "{where}"\n')
    out = project / "private" / "nvs.bin"
    args = ("provision", "--board", "sonatino", "--out", str(out), "--relay", "https://relay.lan:8443/v1/realtime/calls",
            "--device", "kitchen")
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    values = {i["key"]: i["value"] for i in json.loads(invoke("nvs", "show", str(out), "--reveal", "--json").stdout)["items"]}
    device = open_store(where).authenticate(values["relay_token"])
    assert device is not None and device.name == "kitchen" and device.board == "sonatino"
    assert not (project / "xdg").exists()  # nothing in the default store
    listed = invoke("relay", "devices", "--json")
    assert listed.exit_code == 0 and [d["name"] for d in json.loads(listed.stdout)] == ["kitchen"], listed.output
    # a revoke through that store reaches provision too
    assert invoke("relay", "revoke", "kitchen").exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 1 and "is revoked" in again.stderr
    assert values["relay_token"] not in result.output + again.output


def test_provision_relay_token_from_env_leaves_the_store_alone(invoke, relay_env, project, wifi, monkeypatch):
    token = Store(project / "elsewhere.json").enroll("kitchen")  # enrolled on the relay host
    monkeypatch.setenv("RTFLASH_RELAY_TOKEN", token)
    out = project / "private" / "nvs.bin"
    result = invoke("provision", "--board", "sonatino", "--out", str(out), "--relay", "https://r.example/v1/realtime/calls",
                    "--device", "kitchen")
    assert result.exit_code == 0, result.stderr
    assert token.encode() in out.read_bytes() and not store_files(relay_env)
    monkeypatch.setenv("RTFLASH_RELAY_TOKEN", "rtd_short")
    bad = invoke("provision", "--board", "sonatino", "--out", str(out), "--relay", "https://r.example/x", "--device", "k")
    assert bad.exit_code == 1 and "$RTFLASH_RELAY_TOKEN is not a relay device token" in bad.stderr


@pytest.mark.parametrize("extra,code,words", [
    (["--relay", "https://r.lan/v1/realtime/calls"], 2, "--relay URL and --device NAME go together"),
    (["--relay", "http://r.lan/v1/realtime/calls", "--device", "k"], 2, "https:// URL"),
    (["--relay", "https://r.lan/x", "--device", "k", "--api-key", KEY], 2, "in relay mode the device holds no API key"),
    (["--relay", "https://r.lan/x", "--device", "k", "--relay-ca", "ca.pem"], 1, "not a usable PEM CA certificate"),
])
def test_provision_relay_bad_input(invoke, relay_env, project, wifi, extra, code, words):
    (project / "ca.pem").write_text("junk\n")
    out = project / "private" / "nvs.bin"
    result = invoke("provision", "--board", "sonatino", "--out", str(out), *extra)
    assert result.exit_code == code and words in result.stderr and not out.exists()
    assert KEY not in result.output


def test_provision_revoked_device_refused(invoke, relay_env, project, wifi):
    invoke("relay", "enroll", "kitchen")
    invoke("relay", "revoke", "kitchen")
    out = project / "private" / "nvs.bin"
    result = invoke("provision", "--board", "sonatino", "--out", str(out), "--relay", "https://r.lan/x", "--device", "kitchen")
    assert result.exit_code == 1 and "is revoked" in result.stderr and not out.exists()


def test_provision_linux_relay_stores_url_token_ca_for_exec(invoke, relay_env, project, pki, wifi, monkeypatch):
    """The linux board has no NVS: provision keeps the relay URL, a freshly enrolled token and the CA in the
    secrets file (0600), says so in one line without the token, and `secrets show` masks it."""
    import stat

    from rtflash.credentials import stored_relay

    url = "https://relay.lan:8443/v1/realtime/calls"
    args = ("provision", "--board", "linux", "--relay", url, "--device", "kitchen")
    result = invoke(*args, "--relay-ca", str(pki.ca_file))
    assert result.exit_code == 0, result.stderr
    ca = base64.b64encode(ssl.PEM_cert_to_DER_cert(pki.ca_file.read_text())).decode()
    secrets_file = project / "secrets.toml"
    assert result.stderr.splitlines() == [(
        "the linux board has no NVS partition: device kitchen enrolled with a fresh token; its relay URL, token, "
        f"the relay's CA stored in {secrets_file} (mode 0600): run `rtflash exec --relay {url}`")]
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    stored, _ = stored_relay()
    assert stored["relay_url"] == url and stored["relay_ca"] == ca
    token = stored["relay_token"]
    assert open_store(relay_env).authenticate(token).name == "kitchen"  # enrolled: the relay takes it
    assert token not in result.output and KEY not in result.output and KEY not in secrets_file.read_text()
    assert not (project / "build" / "linux" / "nvs.bin").exists()
    shown = invoke("secrets", "show")
    assert shown.exit_code == 0 and "relay_token" in shown.output and token not in shown.output
    # a token from $RTFLASH_RELAY_TOKEN (a relay on another host): stored as given, nothing enrolled here
    other = open_store(project / "elsewhere.json").enroll("kitchen")
    monkeypatch.setenv("RTFLASH_RELAY_TOKEN", other)
    given = invoke(*args)
    assert given.exit_code == 0 and "with the token in $RTFLASH_RELAY_TOKEN" in given.stderr
    assert "CA" not in given.stderr and other not in given.output
    stored, _ = stored_relay()
    assert stored == {"relay_url": url, "relay_token": other}  # replaced: the old CA does not linger
    assert invoke("secrets", "clear", "relay").exit_code == 0 and stored_relay()[0] == {}


def _fake_linux_build(project: Path) -> None:
    """The files `exec` reads to find a linux build; never run by these tests (they fail before it)."""
    build = project / "build" / "linux"
    build.mkdir(parents=True, exist_ok=True)
    (build / "project_description.json").write_text(json.dumps({"app_elf": "rtflash_firmware.elf"}))


def test_exec_relay_without_a_token_names_where_it_looked(invoke, relay_env, project):
    _fake_linux_build(project)
    url = "https://127.0.0.1:9/v1/realtime/calls"
    result = invoke("exec", "--relay", url)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert "--relay needs this device's token: none in $RTFLASH_RELAY_TOKEN" in lines[0]
    assert str(project / ".env") in lines[0] and str(project / "secrets.toml") in lines[0]
    assert f"rtflash provision --board linux --relay {url} --device NAME" in lines[0]


def test_exec_relay_refuses_a_stored_token_of_another_relay(invoke, relay_env, project, pki):
    from rtflash.credentials import store_relay
    from rtflash.relay.store import new_token

    _fake_linux_build(project)
    token = new_token()
    store_relay("https://relay.lan:8443/v1/realtime/calls", token)
    result = invoke("exec", "--relay", "https://127.0.0.1:9/v1/realtime/calls")
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert "holds a token for the relay https://relay.lan:8443/v1/realtime/calls, not this one" in lines[0]
    assert token not in result.output


# --- the installed script, end to end -----------------------------------------------------------------


def test_installed_relay_serves_a_call_and_revoke_shuts_the_device_out(rtflash_exe, project, pki, monkeypatch):
    """The installed script: `relay serve` sets up two devices' calls; `relay revoke kitchen` (a process of
    its own, the key from the environment as serve has it) hangs up kitchen's call only, and its next
    call gets 401."""
    from bench.relay_bench import LoopThread

    store = project / "relay-devices.json"
    env = {"RTFLASH_RELAY_STORE": str(store), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    enrolled = subprocess.run([rtflash_exe, "relay", "enroll", "kitchen"], capture_output=True, text=True,
                              env=env, timeout=60, check=False)
    assert enrolled.returncode == 0, enrolled.stderr
    token = enrolled.stdout.strip()
    other = Store(store).enroll("hall")
    devices = LoopThread()
    calls: list[rs.ClientCall] = []
    with rs.StandInThread(pki, KEY, play="tone") as server:
        relay = RelayProcess(project, pki, server.standin.calls_url, store, key=KEY)
        try:
            def call(tok: str) -> rs.ClientCall:
                c = devices.run(rs.client_call(relay.url, tok, "m", pki.client_context(), rs.tone(800.0)))
                calls.append(c)
                if c.status == 201:
                    assert server.wait_until(lambda: c.received.seconds() >= 0.5, 10), (c.states, relay.log.read_text(), [(x.id, x.state) for x in server.standin.calls])
                return c

            hall, first = call(other), call(token)
            ids = {c.headers["Location"].rsplit("/", 1)[-1] for c in (hall, first)}
            assert server.wait_until(lambda: {c.call_id for n in ("kitchen", "hall")
                                              for c in Store(store).calls_of(n)} == ids, 10)
            revoke = subprocess.run([rtflash_exe, "relay", "revoke", "kitchen"], capture_output=True, text=True,
                                    env={**env, "RTFLASH_OPENAI_API_KEY": KEY,
                                         "RTFLASH_SECRETS_FILE": str(project / "none.toml")},
                                    stdin=subprocess.DEVNULL, timeout=60, check=False)
            assert revoke.returncode == 0, revoke.stderr
            stand = {c.id: c for c in server.standin.calls}
            kitchen_call = stand[first.headers["Location"].rsplit("/", 1)[-1]]
            hall_call = stand[hall.headers["Location"].rsplit("/", 1)[-1]]
            ended = server.wait_until(lambda: first.states[-1][1] in ("closed", "failed"), 10)
            hall_state = (hall.states[-1][1], hall_call.state)
            refused = call(token)
        finally:
            for c in calls:
                devices.run(c.close())
            devices.close()
            log = relay.stop()
    assert first.status == 201 and first.received.seconds() >= 0.5
    assert f"hung up call {kitchen_call.id}" in revoke.stderr.splitlines()
    assert ended and kitchen_call.hung_up is not None and kitchen_call.state == "closed"
    assert hall_call.hung_up is None and hall_state == ("connected", "connected")
    assert refused.status == 401 and hall.status == 201
    assert len(server.standin.requests) == 2 and len(server.standin.hangups) == 1
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in server.standin.requests + server.standin.hangups)
    assert "relay listening on https://127.0.0.1:" in log and "kitchen: 201 call rtc_" in log
    assert "revoked device kitchen refused" in log and "relay stopped (3 request(s), 2 call(s) set up)" in log
    for secret in (KEY, token, other):
        assert secret not in log and secret not in first.body + json.dumps(first.headers) + refused.body
        assert secret not in store_text(store) and secret not in revoke.stdout + revoke.stderr


def test_help_lists_relay(rtflash_exe):
    out = subprocess.run([rtflash_exe, "--help"], capture_output=True, text=True, timeout=60, check=False).stdout
    assert "relay" in out
    sub = subprocess.run([rtflash_exe, "relay", "--help"], capture_output=True, text=True, timeout=60,
                         check=False).stdout
    assert all(c in sub for c in ("serve", "enroll", "devices", "revoke"))
    assert sys.executable


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_installed_relay_with_two_workers_serves_and_keeps_limits_shared(project, pki, monkeypatch, loop):
    """`relay serve --workers 2`: both processes serve one socket, a device's burst is admitted once; on
    uvloop (the default: $RTFLASH_RELAY_LOOP unset) and on asyncio's loop ($RTFLASH_RELAY_LOOP=asyncio)."""
    if loop == "uvloop":
        monkeypatch.delenv("RTFLASH_RELAY_LOOP", raising=False)
    else:
        monkeypatch.setenv("RTFLASH_RELAY_LOOP", loop)
    from collections import Counter

    from bench.relay_bench import LoopThread, MiniUpstream, enroll_many, wave

    servers = LoopThread()
    upstream = MiniUpstream(pki, api_key=KEY)
    servers.run(upstream.start())
    store = project / "relay-devices.json"
    tokens = enroll_many(store, 10)
    try:
        relay = RelayProcess(project, pki, upstream.url, store, "--workers", "2", "--burst", "2", "--rate", "0.1",
                             "--concurrent", "4", key=KEY)
        try:
            results = asyncio.run(wave(relay.url, tokens, 4, pki.client_context()))
            alive = relay.proc.poll() is None
        finally:
            log = relay.stop()
    finally:
        servers.run(upstream.stop())
        servers.close()
    assert alive and ("; 2 workers; uvloop)" if loop == "uvloop" else "; 2 workers)") in log and relay.proc.returncode == 0
    assert Counter(r.status for r in results) == {201: 20, 429: 20}
    assert set(Counter(r.device for r in results if r.status == 201).values()) == {2}
    assert len(upstream.seen) == 20 and all(s.authorization == f"Bearer {KEY}" for s in upstream.seen)
    assert all(t not in log for t in tokens) and KEY not in log


# --- relay revoke hangs up the device's calls in progress ---------------------------------------------


class Scene:
    """The stand-in (holding KEY), an in-process relay in front of it on the CLI's store, and a loop for the
    devices' aiortc calls, which stay up across synchronous `rtflash relay revoke` runs."""

    def __init__(self, pki: rs.Pki, store: Path) -> None:
        from bench.relay_bench import LoopThread
        from rtflash.relay.config import session_object, session_values
        from rtflash.relay.server import Relay, RelayConfig
        from rtflash.settings import Settings

        self.pki, self.store = pki, store
        self.server = rs.StandInThread(pki, KEY, play="silence", respond=False).start()
        self.relays, self.devices = LoopThread(), LoopThread()
        config = RelayConfig(api_key=KEY, store=Store(store), upstream=self.server.standin.calls_url,
                             upstream_ssl=pki.client_context(), upstream_ca=str(pki.ca_file),
                             session_for=lambda d: session_object(session_values(Settings(), d.name, d.board)))
        self.relay = Relay(config)
        self.relays.run(self.relay.start("127.0.0.1", 0, pki.server_context()))
        self.calls: list[rs.ClientCall] = []

    def call(self, token: str) -> tuple[rs.ClientCall, rs.Call]:
        """A device's call through the relay, connected; (device side, stand-in side)."""
        call = self.devices.run(rs.client_call(self.relay.url, token, "m", self.pki.client_context(), rs.silence))
        self.calls.append(call)
        assert call.status == 201, call.body
        assert self.server.wait_until(lambda: call.connected_at() is not None, 10), call.states
        self.relays.run(self.relay.hangups.drain())
        call_id = call.headers["Location"].rsplit("/", 1)[-1]
        return call, next(c for c in self.server.standin.calls if c.id == call_id)

    def close(self) -> None:
        for call in self.calls:
            self.devices.run(call.close())
        self.relays.run(self.relay.stop())
        self.server.stop()
        self.relays.close()
        self.devices.close()


@pytest.fixture
def scene(pki, relay_env):
    s = Scene(pki, relay_env)
    yield s
    s.close()


def test_revoke_hangs_up_the_devices_call_and_no_other(invoke, scene, relay_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # where `relay serve` would find it too
    kitchen, hall = Store(relay_env).enroll("kitchen"), Store(relay_env).enroll("hall")
    (k_dev, k_call), (h_dev, h_call) = scene.call(kitchen), scene.call(hall)
    result = invoke("relay", "revoke", "kitchen")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("revoked kitchen at ") and "next call is refused (401)" in lines[0]
    assert lines[1:] == [f"hung up call {k_call.id}"]
    # the stand-in closed that call, the device sees it end; the other device's call is untouched
    assert scene.server.wait_until(lambda: k_call.state == "closed", 5) and k_call.hung_up is not None
    assert scene.server.wait_until(lambda: k_dev.states[-1][1] in ("closed", "failed"), 10), k_dev.states
    assert h_call.hung_up is None and h_call.state == "connected" and h_dev.states[-1][1] == "connected"
    assert [r.headers["Authorization"] for r in scene.server.standin.hangups] == [f"Bearer {KEY}"]
    assert KEY not in result.output and kitchen not in result.output
    store = Store(relay_env)
    assert store.get("kitchen").revoked and store.calls_of("kitchen") == []
    assert [c.call_id for c in store.calls_of("hall")] == [h_call.id]
    again = invoke("relay", "revoke", "kitchen")
    assert again.exit_code == 0 and "no call of kitchen in progress" in again.stderr


def test_revoke_a_call_already_ended_is_its_404_line(invoke, scene, relay_env, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    token = Store(relay_env).enroll("kitchen")
    device, call = scene.call(token)
    scene.devices.run(device.close())  # the device hung up by itself
    assert scene.server.wait_until(lambda: call.state == "closed", 10), call.states
    result = invoke("relay", "revoke", "kitchen")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[1:] == [f"call {call.id}: already ended (404)"]
    assert Store(relay_env).calls_of("kitchen") == [] and KEY not in result.output


@pytest.mark.parametrize("key", [KEY, None])
def test_revoke_with_the_api_out_of_reach_still_revokes(invoke, relay_env, monkeypatch, key):
    from rtflash.relay.store import CallRecord, now_iso

    if key:
        monkeypatch.setenv("OPENAI_API_KEY", key)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connection refused
    store = Store(relay_env)
    store.enroll("kitchen")
    store.record_calls([CallRecord("kitchen", "rtc_gone", now_iso(), f"https://127.0.0.1:{port}/v1/realtime/calls")])
    result = invoke("relay", "revoke", "kitchen")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("revoked kitchen at ")
    if key:
        assert lines[1] == (f"call rtc_gone: could not reach the API: 127.0.0.1:{port}: Connection refused; the call "
                            "ends when the device hangs up")
    else:
        assert lines[1].startswith("call rtc_gone: not hung up: OpenAI API key is not set")
        assert lines[1].endswith("; the call ends when the device hangs up")
    store = Store(relay_env)
    assert store.get("kitchen").revoked and [c.call_id for c in store.calls_of("kitchen")] == ["rtc_gone"]
    assert KEY not in result.output


# --- behind a real TLS-terminating proxy (nginx, testkit/nginx.py) --------------------------------------


@pytest.fixture
def nginx_ok() -> None:
    from testkit import nginx

    need_installed(nginx.available(), "nginx not installed (apt-get install nginx-light)")


def test_installed_relay_behind_nginx_serves_a_real_call_and_takes_the_proxys_address(rtflash_exe, project, pki,
                                                                                        nginx_ok):
    """`relay serve --behind-proxy` (plain HTTP on 127.0.0.1) behind nginx holding the TLS certificate: an
    aiortc device completes a call through nginx (audio both ways with the stand-in); the address in the
    relay's log is the one nginx appended to X-Forwarded-For, never one the client wrote there."""
    import aiohttp

    from bench.relay_bench import LoopThread
    from testkit.nginx import Nginx

    store = project / "relay-devices.json"
    token = Store(store).enroll("kitchen")
    devices = LoopThread()
    with rs.StandInThread(pki, KEY, play="tone") as server:
        relay = RelayProcess(project, pki, server.standin.calls_url, store, "--behind-proxy", key=KEY)
        proxy = Nginx(int(relay.url.split(":")[2].split("/")[0]), pki.cert_file, pki.key_file)
        try:
            proxy.start()
            call = devices.run(rs.client_call(proxy.url, token, "m", pki.client_context(), rs.tone(800.0)))
            heard = call.status == 201 and server.wait_until(
                lambda: call.received.seconds() >= 0.5 and server.standin.calls[0].received.seconds() >= 0.5, 10)
            devices.run(call.close())

            async def spoofed() -> tuple[int, str, int, str]:
                async with aiohttp.ClientSession() as http:
                    async with http.post(proxy.url, data=b"v=0\r\n", ssl=pki.client_context(),
                                         headers={"Authorization": "Bearer rtd_" + "C" * 43,
                                                  "Content-Type": "application/sdp",
                                                  "X-Forwarded-For": "203.0.113.9"}) as r:
                        status, body = r.status, await r.text()
                    async with http.get(proxy.url.removesuffix("/v1/realtime/calls") + "/healthz",
                                        ssl=pki.client_context()) as h:
                        return status, body, h.status, await h.text()

            unknown, body, health_status, health = devices.run(spoofed())
            access, errors = proxy.access(), proxy.errors()
        finally:
            proxy.stop()
            devices.close()
            log = relay.stop()
    assert relay.url.startswith("http://127.0.0.1:") and proxy.url.startswith("https://127.0.0.1:")
    assert call.status == 201 and heard, (call.states, log, errors[-2000:])
    assert server.standin.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    assert unknown == 401 and json.loads(body)["error"]["code"] == "invalid_device_token"
    assert "unknown token (from 127.0.0.1)" in log and "203.0.113.9" not in log  # nginx's entry, not the client's
    assert health_status == 200 and json.loads(health)["store"] == "ok"
    assert access.count('"POST /v1/realtime/calls?model=m HTTP/1.1" 201 ') == 1 and '" 401 ' in access
    assert "kitchen: 201 call rtc_" in log
    for secret in (KEY, token):
        assert secret not in log and secret not in access + errors
