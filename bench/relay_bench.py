"""Load on `rtflash relay`: 200 concurrent offers from 50 enrolled devices, on 127.0.0.1.

    .venv/bin/python -m bench.relay_bench [--offers 200] [--devices 50] [--rounds 3]

The relay runs as users run it (the installed `rtflash relay serve`, its own process, HTTPS with a
throw-away CA) in front of MiniUpstream: a fast HTTPS handler on 127.0.0.1 that parses the unified
interface's form and returns a canned SDP answer, so the figures are the relay's own cost. Each offer
is a fresh TLS connection, as from a device. Printed:

- through the relay vs straight to the upstream (same client, same concurrency): p50/p99 set-up time,
  and the difference of the p50s (the time the relay adds as a device sees it; goal <= 20 ms);
- the relay's own `Server-Timing: relay;dur=` (total in the relay minus its upstream round trip);
- correctness: every offer answered (201 or 429, none lost), the upstream saw the real key on every
  request, the session of each device, and per-device limits enforced: with --burst 2 exactly two
  calls per device pass; with --concurrent 1 and a slow upstream, one per device at a time.

MiniUpstream also serves the tests (tests/test_relay.py): modes "ok", "unauthorized" (401 whose
message quotes the key it was given, the worst case for the relay's scrubbing), "error" (500 JSON),
"html" (502 HTML page), and a per-request `delay`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "orchestrator"))

from tests.realtime_standin import make_pki, parse_call_form  # noqa: E402

KEY = "sk-bench-relay-KEY-0123456789abcdef"
ANSWER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
          "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=setup:active\r\n"
          "a=rtpmap:111 opus/48000/2\r\na=rtcp-mux\r\n"
          "a=candidate:1 1 udp 2130706431 127.0.0.1 3478 typ host\r\n")
OFFER = ("v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
         "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=setup:actpass\r\n"
         "a=rtpmap:111 opus/48000/2\r\na=sendrecv\r\na=rtcp-mux\r\n"
         "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n")


@dataclass
class Seen:
    authorization: str
    content_type: str
    sdp: str
    session: dict


@dataclass
class MiniUpstream:
    """A fast stand-in of `POST /v1/realtime/calls` (no WebRTC): checks the key, answers a canned SDP."""

    pki: object
    api_key: str = KEY
    mode: str = "ok"
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1/realtime/calls"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/realtime/calls", self._call)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.pki.server_context(), backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _call(self, request: web.Request) -> web.StreamResponse:
        raw = await request.text()
        auth = request.headers.get("Authorization", "")
        if request.content_type == "multipart/form-data":
            sdp, session = parse_call_form(request.headers["Content-Type"], raw)
        else:
            sdp, session = raw, {}
        self.seen.append(Seen(auth, request.content_type, sdp, session))
        if self.delay:
            await asyncio.sleep(self.delay)
        given = auth.removeprefix("Bearer ")
        if self.mode == "unauthorized" or given != self.api_key:
            return _error(401, f"Incorrect API key provided: {given}. You can find your API key at "
                          "https://platform.openai.com/account/api-keys.", "invalid_api_key")
        if self.mode == "error":
            return _error(500, "The server had an error while processing your request.", "server_error")
        if self.mode == "html":
            return web.Response(status=502, text="<html>Bad gateway</html>", content_type="text/html")
        if not sdp.startswith("v=0"):
            return _error(400, "The request body is not an SDP offer.", "invalid_offer")
        return web.Response(status=201, text=ANSWER, content_type="application/sdp",
                            headers={"Location": f"/v1/realtime/calls/rtc_{len(self.seen):032x}"})


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "code": code,
                                        "param": None}}, status=status)


class LoopThread:
    """An asyncio loop in a thread (servers for synchronous callers); run(coro) waits for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Result:
    device: int
    status: int
    ms: float
    relay_ms: float | None
    body: str


async def offer(url: str, token: str, ctx: ssl.SSLContext, device: int, timeout: float = 60.0) -> Result:
    """One device's offer on a fresh connection (as a device makes it)."""
    t0 = time.perf_counter()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.post(url, data=OFFER.encode(), ssl=ctx,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}) as r:
                body = await r.text()
                timing = r.headers.get("Server-Timing", "")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return Result(device, 0, (time.perf_counter() - t0) * 1000, None, f"{type(exc).__name__}: {exc}")
    relay_ms = None
    for part in timing.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if name == "relay" and dur:
            relay_ms = float(dur)
    return Result(device, r.status, (time.perf_counter() - t0) * 1000, relay_ms, body)


async def wave(url: str, tokens: list[str], per_device: int, ctx: ssl.SSLContext) -> list[Result]:
    """per_device offers from each device, all at once."""
    jobs = [offer(url, tok, ctx, i) for i, tok in enumerate(tokens) for _ in range(per_device)]
    return list(await asyncio.gather(*jobs))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# --- the relay process -----------------------------------------------------------------------------


def rtflash_exe() -> str:
    exe = Path(sys.executable).parent / "rtflash"
    return str(exe) if exe.exists() else (shutil.which("rtflash") or "rtflash")


class RelayProcess:
    """`rtflash relay serve` on 127.0.0.1:<free port>, until stop(); url from its `listening on` line."""

    def __init__(self, work: Path, pki, upstream: str, store: Path, *extra: str, key: str = KEY) -> None:
        env = {**os.environ, "RTFLASH_OPENAI_API_KEY": key, "RTFLASH_RELAY_STORE": str(store),
               "RTFLASH_SECRETS_FILE": str(work / "no-secrets.toml"), "NO_COLOR": "1"}
        self.log = work / f"relay-{time.monotonic_ns()}.log"
        self._log_fh = self.log.open("w")
        argv = [rtflash_exe(), "-C", str(work), "relay", "serve", "--host", "127.0.0.1", "--port", "0",
                "--cert", str(pki.cert_file), "--key", str(pki.key_file), "--upstream", upstream,
                "--upstream-ca", str(pki.ca_file), *extra]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log_fh,
                                     env=env, cwd=work)
        self.url = self._wait_url(20.0)

    def _wait_url(self, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.log.read_text()
            for line in text.splitlines():
                if "relay listening on " in line:
                    return line.split("relay listening on ", 1)[1].split()[0]
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited {self.proc.returncode}: {text}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"relay did not start in {timeout} s: {self.log.read_text()}")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_fh.close()
        return self.log.read_text()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), for the relay's cost per offer."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def enroll_many(store_path: Path, count: int) -> list[str]:
    from rtflash.relay.store import Store

    store = Store(store_path)
    return [store.enroll(f"dev-{i:02d}", "sonatino") for i in range(count)]


# --- the bench ---------------------------------------------------------------------------------------


def summary(name: str, results: list[Result]) -> str:
    ok = [r.ms for r in results if r.status == 201]
    return f"{name:<22} {len(ok):>4}/{len(results)} ok   p50 {pct(ok, 50):7.1f} ms   p99 {pct(ok, 99):7.1f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--offers", type=int, default=200)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    per_device = max(1, args.offers // args.devices)
    work = Path(tempfile.mkdtemp(prefix="rtflash-relay-bench-"))
    servers = LoopThread()
    problems: list[str] = []
    try:
        pki = make_pki(work / "pki")
        ctx = pki.client_context()
        upstream = MiniUpstream(pki)
        servers.run(upstream.start())
        store = work / "relay-devices.json"
        tokens = enroll_many(store, args.devices)
        print(f"{args.devices} devices x {per_device} offers = {args.devices * per_device} concurrent offers, "
              f"{args.rounds} round(s); relay = installed `rtflash relay serve` (own process), loopback HTTPS")

        # 1. timing: limits wide enough to admit everything
        relay = RelayProcess(work, pki, upstream.url, store, "--burst", "1000", "--rate", "6000",
                             "--concurrent", str(per_device))
        direct, through, idle_direct, idle_through = [], [], [], []
        try:
            for i in range(20):  # one device at a time: the relay's cost without queueing
                idle_direct.append(asyncio.run(offer(upstream.url, KEY, ctx, 0)))
                idle_through.append(asyncio.run(offer(relay.url, tokens[i % len(tokens)], ctx, 0)))
            cpu0 = cpu_seconds(relay.proc.pid)
            for _ in range(args.rounds):
                direct += asyncio.run(wave(upstream.url, [KEY] * args.devices, per_device, ctx))
                through += asyncio.run(wave(relay.url, tokens, per_device, ctx))
            cpu = cpu_seconds(relay.proc.pid) - cpu0
        finally:
            log = relay.stop()
        print(summary("one at a time, direct", idle_direct))
        print(summary("one at a time, relay", idle_through))
        print(f"added by the relay     p50 {pct([r.ms for r in idle_through], 50) - pct([r.ms for r in idle_direct], 50):7.1f} ms"
              " one offer at a time")
        print(summary("straight to upstream", direct))
        print(summary("through the relay", through))
        print(f"relay CPU per offer    {cpu / max(1, len(through)) * 1000:7.2f} ms (user+system, TLS handshake included); "
              f"{os.cpu_count()} CPU(s) on this machine, shared")
        ok_through = [r.ms for r in through if r.status == 201]
        ok_direct = [r.ms for r in direct if r.status == 201]
        added = pct(ok_through, 50) - pct(ok_direct, 50)
        own = [r.relay_ms for r in through if r.relay_ms is not None]
        print(f"added by the relay     p50 {added:7.1f} ms at {len(tokens) * per_device} concurrent (goal <= 20 ms: {'met' if added <= 20 else 'NOT met'}); "
              f"p99 difference {pct(ok_through, 99) - pct(ok_direct, 99):.1f} ms")
        print(f"relay's own time       p50 {pct(own, 50):7.2f} ms   p99 {pct(own, 99):7.2f} ms   "
              f"(Server-Timing relay;dur)")
        lost = [r for r in through + direct if r.status != 201]
        if lost:
            problems.append(f"{len(lost)} offers not answered 201 in the timing run: {Counter(r.status for r in lost)}")
        relay_seen = [s for s in upstream.seen if s.content_type == "multipart/form-data"]
        if any(s.authorization != f"Bearer {KEY}" for s in relay_seen):
            problems.append("the upstream saw a request without the real key")
        if any(t in log for t in tokens) or KEY in log:
            problems.append("a token or the key is in the relay's log")

        # 2. rate limit: burst 2, slow refill -> exactly 2 per device pass
        relay = RelayProcess(work, pki, upstream.url, store, "--burst", "2", "--rate", "0.1",
                             "--concurrent", str(per_device))
        try:
            rated = asyncio.run(wave(relay.url, tokens, per_device, ctx))
        finally:
            relay.stop()
        problems += check_limits("burst 2", rated, args.devices, min(2, per_device))

        # 3. concurrency: 1 in flight per device, upstream slow enough that the others overlap it
        upstream.delay = 2.0
        relay = RelayProcess(work, pki, upstream.url, store, "--burst", "1000", "--rate", "6000", "--concurrent", "1")
        try:
            bounded = asyncio.run(wave(relay.url, tokens, per_device, ctx))
        finally:
            relay.stop()
            upstream.delay = 0.0
        problems += check_limits("concurrent 1", bounded, args.devices, 1)
    finally:
        servers.run(upstream.stop())
        servers.close()
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print(f"PROBLEM: {p}")
    print("correctness: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def check_limits(name: str, results: list[Result], devices: int, allowed: int) -> list[str]:
    """Every offer answered (201 or 429), and exactly `allowed` 201s per device."""
    statuses = Counter(r.status for r in results)
    per_device = Counter(r.device for r in results if r.status == 201)
    print(f"limits ({name:<12})   {len(results)} offers: {statuses.get(201, 0)} x 201, {statuses.get(429, 0)} x 429, "
          f"{len(results) - statuses.get(201, 0) - statuses.get(429, 0)} other; 201s per device "
          f"{sorted(set(per_device.values()))}")
    problems = []
    if set(statuses) - {201, 429}:
        problems.append(f"{name}: statuses other than 201/429: {dict(statuses)}")
    if any(per_device.get(d, 0) != allowed for d in range(devices)):
        problems.append(f"{name}: 201s per device not all {allowed}: {dict(per_device)}")
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
