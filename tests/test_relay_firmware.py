"""Relay mode from the device's side: the real linux firmware, given a relay URL, a device token and the
relay's CA and NO API key, sets up its call through the installed `rtflash relay serve` in front of the
Realtime stand-in; revoking it gets its next attempt a 401, one clear line and a long hold; and a
relay-mode NVS partition read back with esptool from the ROM-bootloader emulator holds no key.

Canary: the key the relay forwards (the stand-in checks it) is never in the firmware's log, environment
or memory (/proc/PID/mem scanned; the device token, which must be there, is the scan's positive
control). Loopback only: the relay, the stand-in, ICE (RTFLASH_ICE_IFACE=lo) and the emulator.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.relay_bench import RelayProcess
from rtflash.relay.sqlstore import open_store as Store
from testkit import realtime_standin as rs
from testkit.shared import need_installed

KEY = "sk-" + "relay-fw-canary-" + "Zq8" * 8
DEVICE = "linux-kitchen"
INSTRUCTIONS = "Answer like a ship's radio operator."
VOICE = "marin"
REFUSED = "signalling failed: the relay refused this device's token (HTTP 401"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> rs.Pki:
    return rs.make_pki(tmp_path_factory.mktemp("pki"))


def ca_line(pki: rs.Pki) -> str:
    """relay_ca as `provision --relay-ca` writes it: base64 of the CA's DER, one line."""
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(pki.ca_file.read_text())).decode("ascii")


class Firmware:
    """The linux firmware as a process with only the relay settings in its environment."""

    def __init__(self, elf: Path, work: Path, env: dict[str, str], name: str = "firmware") -> None:
        self.log_path = work / f"{name}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "OPENAI_", "RT_WAV"))}
        self.env = {**base, **env}
        self.proc = subprocess.Popen([str(elf)], env=self.env, stdout=self.log_path.open("wb"),
                                     stderr=subprocess.STDOUT, cwd=work)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:  # the POSIX FreeRTOS port does not always end on SIGTERM
                self.proc.kill()
                self.proc.wait(5)


def memory_holds(pid: int, needles: list[bytes]) -> dict[bytes, bool]:
    """Whether each needle is anywhere in the readable memory of process `pid` (/proc/PID/mem, as root)."""
    found = dict.fromkeys(needles, False)
    overlap = max(len(n) for n in needles)
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]", "[vvar_vclock]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            tail = b""
            for at in range(start, end, 1 << 20):
                try:
                    mem.seek(at)
                    chunk = tail + mem.read(min(1 << 20, end - at))
                except (OSError, ValueError):
                    break
                for n in needles:
                    found[n] = found[n] or n in chunk
                tail = chunk[-overlap:]
    return found


@dataclass
class World:
    server: rs.StandInThread
    relay: RelayProcess
    store: Path
    token: str
    work: Path

    def firmware_env(self, pki: rs.Pki) -> dict[str, str]:
        return {"RTFLASH_RELAY_URL": self.relay.url, "RTFLASH_RELAY_TOKEN": self.token,
                "RTFLASH_RELAY_CA": ca_line(pki), "RTFLASH_ICE_IFACE": "lo"}


@pytest.fixture
def world(pki: rs.Pki, tmp_path: Path) -> Iterator[World]:
    """The stand-in (holding the real key), `rtflash relay serve` in front of it, one enrolled device;
    rtflash.toml gives that device its own instructions and voice."""
    store = tmp_path / "relay-devices.json"
    token = Store(store).enroll(DEVICE, "linux")
    (tmp_path / "rtflash.toml").write_text(
        f'[relay.devices.{DEVICE}]\ninstructions = "{INSTRUCTIONS}"\nvoice = "{VOICE}"\n')
    with rs.StandInThread(pki, KEY, play="tone") as server:
        relay = RelayProcess(tmp_path, pki, server.standin.calls_url, store, key=KEY)
        try:
            yield World(server, relay, store, token, tmp_path)
        finally:
            relay.stop()


def test_firmware_without_a_key_sets_up_its_call_through_the_relay(linux_firmware, pki, world: World) -> None:
    fw = Firmware(linux_firmware.elf, world.work, world.firmware_env(pki))
    try:
        answered = world.server.wait_until(lambda: "SDP answer received (HTTP 201" in fw.log(), 20)
        connected = answered and world.server.wait_until(lambda: "peer state: CONNECTED" in fw.log(), 10)
        alive = fw.proc.poll() is None
        memory = memory_holds(fw.proc.pid, [KEY.encode(), KEY[3:].encode(), world.token.encode()]) if alive else {}
        environ = Path(f"/proc/{fw.proc.pid}/environ").read_bytes() if alive else b""
    finally:
        fw.stop()
    log = fw.log()
    relay_log = world.relay.stop()
    assert answered and alive, log[-3000:]
    # the device's side: relay mode chosen, the CA provisioned is what it trusts, the offer went to the relay
    assert "mode: relay (" in log and "no API key needed on this device" in log and "mode: direct" not in log
    assert "api_key: missing" in log and "relay_token: present (47 characters)" in log
    assert re.search(r"relay_ca: \d+-byte certificate trusted for the relay", log)
    assert "sending the SDP offer" in log and f"to {world.relay.url}\n" in log  # no ?model=: the relay decides
    # ICE between the firmware and the stand-in came up on the answer the relay handed back
    assert connected, log[-3000:]
    # upstream: the stand-in got the real key and the session of rtflash.toml, from the relay only
    requests = world.server.standin.requests
    assert requests and all(r.headers["Authorization"] == f"Bearer {KEY}" for r in requests)
    assert all(r.headers["Content-Type"].startswith("multipart/form-data") for r in requests)
    call = world.server.standin.calls[0]
    assert call.session["instructions"] == INSTRUCTIONS and call.session["audio"]["output"]["voice"] == VOICE
    assert call.offer.startswith("v=0") and "a=fingerprint:" in call.offer  # libpeer's own offer, unchanged
    assert f"{DEVICE}: 201 call rtc_" in relay_log
    # the canary: the key is nowhere on the device side; the token (which must be there) proves the scan works
    assert memory[world.token.encode()], "memory scan did not find the token the firmware holds: scan broken"
    assert not memory[KEY.encode()] and not memory[KEY[3:].encode()]
    assert KEY.encode() not in environ and b"sk-" not in environ and b"OPENAI_API_KEY" not in environ
    assert KEY not in log and KEY[3:] not in log and world.token not in log
    assert KEY not in relay_log and world.token not in relay_log


def test_relay_call_opens_the_data_channel_and_keeps_the_relays_session(linux_firmware, pki, world: World) -> None:
    fw = Firmware(linux_firmware.elf, world.work, world.firmware_env(pki))
    try:
        opened = world.server.wait_until(lambda: "datachannel open: oai-events" in fw.log(), 20)
        calls = world.server.standin.calls
        events = world.server.wait_until(lambda: calls and "response.create" in calls[0].event_types_in(), 5)
    finally:
        fw.stop()
    assert opened and events, fw.log()[-3000:]
    # relay mode sends no session.update of its own: the relay's instructions and voice stay
    assert "session.update" not in calls[0].event_types_in()
    assert calls[0].session["instructions"] == INSTRUCTIONS


def test_revoked_device_gets_401_one_line_and_a_long_hold(linux_firmware, pki, world: World, rtflash_exe) -> None:
    env = {"RTFLASH_RELAY_STORE": str(world.store), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    fw = Firmware(linux_firmware.elf, world.work, world.firmware_env(pki))
    restarted = None
    try:
        assert world.server.wait_until(lambda: "SDP answer received (HTTP 201" in fw.log(), 20), fw.log()[-3000:]
        revoke = subprocess.run([rtflash_exe, "relay", "revoke", DEVICE], capture_output=True, text=True, env=env,
                                timeout=60, check=False)
        assert revoke.returncode == 0, revoke.stderr
        # the next attempt: end the call from the far side (as the API does when a call ends)
        for call in list(world.server.standin.calls):
            if call.pc is not None:
                world.server.run(call.pc.close())
        if not world.server.wait_until(lambda: REFUSED in fw.log(), 30):
            fw.stop()  # a session libpeer kept up: reset the device instead; its first attempt is the next one
            restarted = fw = Firmware(linux_firmware.elf, world.work, world.firmware_env(pki), "firmware-reset")
            assert world.server.wait_until(lambda: REFUSED in fw.log(), 20), fw.log()[-3000:]
        time.sleep(3.0)  # a short back-off would retry within this
        alive = fw.proc.poll() is None
    finally:
        fw.stop()
    log = fw.log()
    relay_log = world.relay.stop()
    print("next attempt came from", "a reset" if restarted else "the same process (call ended by the far side)")
    assert alive, log[-3000:]
    after = log[log.index(REFUSED):]
    assert log.count(REFUSED) == 1 and "sending the SDP offer" not in after  # one line, then silence
    assert "revoked or not enrolled" in after and "rtflash relay enroll NAME --replace" in after
    assert "session ended; reconnecting in 1800000 ms" in after  # 30 minutes, not seconds
    assert f"revoked device {DEVICE} refused" in relay_log
    # refused at the relay: nothing more went upstream than the calls the firmware set up before
    answered = sum(f.read_text(errors="replace").count("SDP answer received (HTTP 201")
                   for f in world.work.glob("firmware*.log"))
    assert len(world.server.standin.requests) == answered
    for text in (log, relay_log):
        assert KEY not in text and world.token not in text



def _exec_until_open(argv: list[str], cwd: Path, env: dict, log_path: Path, world) -> tuple[bool, bytes]:
    """Run `rtflash exec ...` (its own process group, output to log_path) until the firmware's data channel
    opens (30 s at most), read the firmware's environment from /proc while it runs, then SIGTERM the group.
    Whether it opened, and that environment (empty when the firmware was not running)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    environ = b""
    try:
        opened = world.server.wait_until(lambda: "datachannel open: oai-events" in log_path.read_text(errors="replace"), 30)
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split() if proc.poll() is None else []
        if children:
            environ = Path(f"/proc/{children[0]}/environ").read_bytes()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    return opened, environ

def test_rtflash_exec_relay_mode_calls_through_the_relay_without_a_key(linux_firmware, pki, world: World,
                                                                      rtflash_exe) -> None:
    """`rtflash exec --relay URL --relay-ca FILE` with the device token in $RTFLASH_RELAY_TOKEN: the firmware
    runs in relay mode against the relay in front of the stock stand-in, the call connects (exec set the ICE
    interface itself: no RTFLASH_ICE_IFACE given) and the data channel opens; the API key, though in exec's own
    environment, is not passed to the firmware."""
    env = {k: v for k, v in linux_firmware.env.items() if not k.startswith(("RTFLASH_API", "RTFLASH_CA", "RTFLASH_ICE"))}
    env.update({"OPENAI_API_KEY": KEY, "RTFLASH_RELAY_TOKEN": world.token})
    log_path = world.work / "exec-relay.log"
    opened, environ = _exec_until_open([rtflash_exe, "exec", "--relay", world.relay.url, "--relay-ca", str(pki.ca_file)],
                                       linux_firmware.project, env, log_path, world)
    log = log_path.read_text(errors="replace")
    relay_log = world.relay.stop()
    assert opened, log[-3000:]
    assert "mode: relay (" in log and "peer state: CONNECTED" in log
    calls = world.server.standin.calls
    assert calls and calls[0].channel_open is not None
    rs.assert_loopback_sdp(calls[0].offer, "firmware offer under rtflash exec --relay")
    assert environ and b"RTFLASH_ICE_IFACE=lo" in environ and b"RTFLASH_RELAY_URL=" in environ
    assert KEY.encode() not in environ and b"OPENAI_API_KEY" not in environ
    assert f"{DEVICE}: 201 call rtc_" in relay_log
    for text in (log, relay_log):
        assert KEY not in text and world.token not in text


def test_rtflash_exec_relay_mode_takes_token_and_ca_from_provision(linux_firmware, pki, world: World,
                                                                   rtflash_exe) -> None:
    """`rtflash provision --board linux --relay URL --device NAME --relay-ca FILE` (the installed script,
    enrolling a fresh token in the relay's store), then `rtflash exec --relay URL` with no token in the
    environment and no --relay-ca: exec finds both where provision stored them (the secrets file, 0600), the
    firmware calls through the relay in front of the stock stand-in and the data channel opens. The minted
    token and the canary key appear in no output or log."""
    secrets_file = world.work / "secrets.toml"
    env = {k: v for k, v in linux_firmware.env.items() if not k.startswith("RTFLASH_")}
    env.update({"OPENAI_API_KEY": KEY, "RTFLASH_SECRETS_FILE": str(secrets_file),
                "RTFLASH_RELAY_STORE": str(world.store), "NO_COLOR": "1"})
    provisioned = subprocess.run([rtflash_exe, "provision", "--board", "linux", "--relay", world.relay.url,
                                  "--device", "linux-den", "--relay-ca", str(pki.ca_file)], cwd=linux_firmware.project,
                                 env=env, capture_output=True, text=True, timeout=60, check=False)
    assert provisioned.returncode == 0, provisioned.stderr
    assert f"stored in {secrets_file} (mode 0600): run `rtflash exec --relay {world.relay.url}`" in provisioned.stderr
    token = re.search(r'relay_token = "([^"]+)"', secrets_file.read_text()).group(1)
    assert token != world.token and (secrets_file.stat().st_mode & 0o077) == 0
    log_path = world.work / "exec-relay-stored.log"
    opened, environ = _exec_until_open([rtflash_exe, "exec", "--relay", world.relay.url], linux_firmware.project, env,
                                       log_path, world)
    log = log_path.read_text(errors="replace")
    relay_log = world.relay.stop()
    assert opened, log[-3000:]
    assert "mode: relay (" in log and re.search(r"relay_ca: \d+-byte certificate trusted for the relay", log)
    assert environ and f"RTFLASH_RELAY_TOKEN={token}".encode() in environ and b"RTFLASH_RELAY_CA=" in environ
    assert KEY.encode() not in environ and b"OPENAI_API_KEY" not in environ
    assert "linux-den: 201 call rtc_" in relay_log
    for text in (log, relay_log, provisioned.stdout + provisioned.stderr):
        assert KEY not in text and token not in text


def test_rtflash_exec_relay_mode_without_a_token_is_one_line(linux_firmware, tmp_path: Path, rtflash_exe) -> None:
    env = {k: v for k, v in linux_firmware.env.items() if not k.startswith("RTFLASH_RELAY")}
    env["RTFLASH_SECRETS_FILE"] = str(tmp_path / "no-secrets.toml")
    done = subprocess.run([rtflash_exe, "-C", str(linux_firmware.project), "exec", "--relay",
                           "https://127.0.0.1:9/v1/realtime/calls"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert "--relay needs this device's token: none in $RTFLASH_RELAY_TOKEN" in lines[0] and "Traceback" not in done.stderr
    assert str(tmp_path / "no-secrets.toml") in lines[0] and "rtflash provision --board linux --relay" in lines[0]


# --- read-flash: what an attacker with the board gets -------------------------------------------------------


def test_relay_nvs_read_back_with_esptool_holds_no_api_key(emulators, project, pki, rtflash_exe) -> None:
    from rtflash.boards import load_catalog
    from rtflash.partitions import read_csv
    from rtflash.render import ensure_rendered
    from rtflash.settings import load_settings

    emu = emulators()
    store = project / "relay-devices.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "OPENAI_", "WIFI_"))}
    env.update({"RTFLASH_RELAY_STORE": str(store), "RTFLASH_SECRETS_FILE": str(project / "none.toml"),
                "RTFLASH_CACHE_DIR": str(project / ".cache"), "WIFI_SSID": "Home", "WIFI_PASSWORD": "canary-pw-42",
                "OPENAI_API_KEY": KEY, "NO_COLOR": "1"})  # the key IS at hand, and must still not be written
    url = "https://relay.lan:8443/v1/realtime/calls"
    done = subprocess.run([rtflash_exe, "provision", "--board", "sonatino", "--port", emu.url, "--relay", url,
                           "--device", "kitchen", "--relay-ca", str(pki.ca_file)],
                          capture_output=True, text=True, env=env, cwd=project, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    board = load_catalog(None).get("sonatino")
    part = read_csv(ensure_rendered(board, load_settings(project), project).out_dir / "partitions.csv").find("nvs")
    dump = project / "nvs-read-back.bin"
    read = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32s3", "--port", emu.url,
                           "read-flash", hex(part.offset), hex(part.size), str(dump)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert read.returncode == 0, read.stdout + read.stderr
    data = dump.read_bytes()
    assert len(data) == part.size and data == bytes(emu.chip.flash[part.offset:part.offset + part.size])
    # what the attacker has: no API key, nothing key-shaped, no api_key entry at all
    assert KEY.encode() not in data and KEY[3:].encode() not in data and b"sk-" not in data
    assert b"api_key" not in data
    # and what is there: the relay's URL, its CA and this device's token (the one the relay knows)
    shown = subprocess.run([rtflash_exe, "nvs", "show", str(dump), "--reveal", "--json"], capture_output=True,
                           text=True, env=env, cwd=project, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    values = {i["key"]: i["value"] for i in json.loads(shown.stdout)["items"]}
    assert values["relay_url"] == url and "api_key" not in values
    assert base64.b64decode(values["relay_ca"]) == ssl.PEM_cert_to_DER_cert(pki.ca_file.read_text())
    device = Store(store).authenticate(values["relay_token"])
    assert device is not None and device.name == "kitchen"
    assert values["relay_token"].encode() in data  # the device token is what a thief gets; revoke shuts it out
    assert KEY not in done.stdout + done.stderr and values["relay_token"] not in done.stdout + done.stderr
    with contextlib.suppress(FileNotFoundError):
        dump.unlink()


def test_firmware_through_nginx_in_front_of_a_relay_behind_proxy(linux_firmware, pki, tmp_path: Path) -> None:
    """The deployment `--behind-proxy` is for: nginx on the relay host holds the certificate the firmware
    trusts (relay_ca) and forwards to the relay's plain HTTP port; the firmware's call comes up."""
    from testkit import nginx

    need_installed(nginx.available(), "nginx not installed (apt-get install nginx-light)")
    store = tmp_path / "relay-devices.json"
    token = Store(store).enroll(DEVICE, "linux")
    with rs.StandInThread(pki, KEY, play="tone") as server:
        relay = RelayProcess(tmp_path, pki, server.standin.calls_url, store, "--behind-proxy", key=KEY)
        proxy = nginx.Nginx(int(relay.url.split(":")[2].split("/")[0]), pki.cert_file, pki.key_file)
        fw = None
        try:
            proxy.start()
            fw = Firmware(linux_firmware.elf, tmp_path, {"RTFLASH_RELAY_URL": proxy.url, "RTFLASH_RELAY_TOKEN": token,
                                                         "RTFLASH_RELAY_CA": ca_line(pki), "RTFLASH_ICE_IFACE": "lo"})
            answered = server.wait_until(lambda: "SDP answer received (HTTP 201" in fw.log(), 20)
            connected = answered and server.wait_until(lambda: "peer state: CONNECTED" in fw.log(), 10)
            access = proxy.access()
        finally:
            if fw is not None:
                fw.stop()
            proxy.stop()
            relay_log = relay.stop()
    log = fw.log()
    assert answered and connected, log[-3000:]
    assert f"to {proxy.url}\n" in log and f"{DEVICE}: 201 call rtc_" in relay_log
    assert '"POST /v1/realtime/calls HTTP/1.1" 201 ' in access  # through nginx, not around it
    assert server.standin.requests[0].headers["Authorization"] == f"Bearer {KEY}"
    for text in (log, relay_log, access):
        assert KEY not in text and token not in text
