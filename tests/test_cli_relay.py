"""`rtflash relay serve|enroll|devices|revoke` and `provision --relay` as users run them: CliRunner for the
commands and their errors, and the installed script serving a real call in front of the stand-in."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
import sys

import pytest

from bench.relay_bench import RelayProcess
from rtflash.relay.store import Store, token_hash
from testkit import realtime_standin as rs

KEY = "sk-cli-relay-KEY-canary-0123456789"


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
    text = relay_env.read_text()
    assert token not in text and token_hash(token) in text and (relay_env.stat().st_mode & 0o777) == 0o600
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
    assert token not in result.output and token not in relay_env.read_text()
    shown = invoke("nvs", "show", str(out))
    assert "relay_token" in shown.stdout and token not in shown.output  # masked without --reveal
    # provisioning again replaces the token: the old one stops working
    assert invoke("provision", "--board", "sonatino", "--out", str(out), "--relay",
                  "https://relay.lan:8443/v1/realtime/calls", "--device", "kitchen").exit_code == 0
    assert Store(relay_env).authenticate(token) is None


def test_provision_relay_token_from_env_leaves_the_store_alone(invoke, relay_env, project, wifi, monkeypatch):
    token = Store(project / "elsewhere.json").enroll("kitchen")  # enrolled on the relay host
    monkeypatch.setenv("RTFLASH_RELAY_TOKEN", token)
    out = project / "private" / "nvs.bin"
    result = invoke("provision", "--board", "sonatino", "--out", str(out), "--relay", "https://r.example/v1/realtime/calls",
                    "--device", "kitchen")
    assert result.exit_code == 0, result.stderr
    assert token.encode() in out.read_bytes() and not relay_env.exists()
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


# --- the installed script, end to end -----------------------------------------------------------------


def test_installed_relay_serves_a_call_and_revoke_shuts_the_device_out(rtflash_exe, project, pki, monkeypatch):
    store = project / "relay-devices.json"
    env = {"RTFLASH_RELAY_STORE": str(store), "PATH": "/usr/bin:/bin"}
    enrolled = subprocess.run([rtflash_exe, "relay", "enroll", "kitchen"], capture_output=True, text=True,
                              env=env, timeout=60)
    assert enrolled.returncode == 0, enrolled.stderr
    token = enrolled.stdout.strip()
    other = Store(store).enroll("hall")
    with rs.StandInThread(pki, KEY, play="tone") as server:
        relay = RelayProcess(project, pki, server.standin.calls_url, store, key=KEY)
        try:
            async def call(tok: str) -> rs.ClientCall:
                c = await rs.client_call(relay.url, tok, "m", pki.client_context(), rs.tone(800.0))
                if c.status == 201:
                    for _ in range(250):
                        if c.received.seconds() >= 0.5:
                            break
                        await asyncio.sleep(0.02)
                await c.close()
                return c

            first = asyncio.run(call(token))
            revoke = subprocess.run([rtflash_exe, "relay", "revoke", "kitchen"], capture_output=True, text=True,
                                    env=env, timeout=60)
            assert revoke.returncode == 0, revoke.stderr
            refused = asyncio.run(call(token))
            hall = asyncio.run(call(other))
        finally:
            log = relay.stop()
    assert first.status == 201 and first.received.seconds() >= 0.5
    assert refused.status == 401 and hall.status == 201
    assert len(server.standin.requests) == 2
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in server.standin.requests)
    assert "relay listening on https://127.0.0.1:" in log and "kitchen: 201 call rtc_" in log
    assert "revoked device kitchen refused" in log and "relay stopped (3 request(s), 2 call(s) set up)" in log
    for secret in (KEY, token, other):
        assert secret not in log and secret not in first.body + json.dumps(first.headers) + refused.body
        assert secret not in store.read_text()


def test_help_lists_relay(rtflash_exe):
    out = subprocess.run([rtflash_exe, "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "relay" in out
    sub = subprocess.run([rtflash_exe, "relay", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert all(c in sub for c in ("serve", "enroll", "devices", "revoke"))
    assert sys.executable


def test_installed_relay_with_two_workers_serves_and_keeps_limits_shared(project, pki):
    """`relay serve --workers 2`: both processes serve one socket, a device's burst is admitted once."""
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
    assert alive and "; 2 workers)" in log and relay.proc.returncode == 0
    assert Counter(r.status for r in results) == {201: 20, 429: 20}
    assert set(Counter(r.device for r in results if r.status == 201).values()) == {2}
    assert len(upstream.seen) == 20 and all(s.authorization == f"Bearer {KEY}" for s in upstream.seen)
    assert all(t not in log for t in tokens) and KEY not in log
