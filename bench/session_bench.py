"""Voice-session figures on loopback against the Realtime API stand-in (tests/realtime_standin.py).

The stand-in runs as its own process (`python -m tests.realtime_standin --play echo`): it echoes the
audio it receives, so a click sent by the client comes back. Measured per client:

- launch-to-connected: from the start (aiortc: creating the offer, interpreter already up; firmware:
  process launch) to the peer connection CONNECTED, and to the data channel open
- round trip: click sent -> click heard back (both Opus encoders, both jitter buffers, the echo's 20 ms
  frame); median of the clicks
- CPU: process CPU seconds per second of call, in the steady part of the call (client process only;
  the stand-in's own CPU is its separate process and not counted)

The aiortc client is the reference column. The firmware column is filled by the linux firmware run
against the same stand-in (see tests/test_e2e_session.py for how it is driven) when it is built.

    .venv/bin/python bench/session_bench.py [--calls 3] [--clicks 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import realtime_standin as rs  # noqa: E402

KEY = "sk-bench-" + "0" * 24
MODEL = "gpt-realtime"
CLICK = 0.005  # 5 ms burst
THRESHOLD = 4000


def start_standin(pki_dir: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "RTFLASH_STANDIN_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "tests.realtime_standin", "--pki-dir", str(pki_dir),
                             "--play", "echo"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening "):
        proc.kill()
        raise SystemExit(f"stand-in did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


def click_source(first: float, every: float, count: int):
    """Clicks (a 5 ms 1 kHz burst at 0.6 full scale) at first, first+every, ... seconds; silence between."""
    starts = [int((first + i * every) * rs.RATE) for i in range(count)]
    burst = (0.6 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(int(CLICK * rs.RATE)) / rs.RATE)).astype(np.int16)

    def source(start: int, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        for s in starts:
            lo, hi = max(s, start), min(s + len(burst), start + n)
            if lo < hi:
                out[lo - start : hi - start] = burst[lo - s : hi - s]
        return out

    return source, starts


def time_of(sample: int, times: list[tuple[float, int]]) -> float:
    """Wall time of a sample, from the (time, first sample) of the frame holding it."""
    best = times[0]
    for t, first in times:
        if first > sample:
            break
        best = (t, first)
    return best[0] + (sample - best[1]) / rs.RATE


def click_latencies(sent_times, starts, rec: rs.Recording, min_gap: float = 0.25) -> list[float]:
    pcm = np.abs(rec.pcm().astype(np.int32))
    hits, last = [], -rs.RATE
    for idx in np.flatnonzero(pcm > THRESHOLD):
        if idx - last > min_gap * rs.RATE:
            hits.append(int(idx))
        last = idx
    out = []
    for s in starts:
        t_sent = time_of(s, sent_times)
        t_back = [time_of(h, rec.times) for h in hits]
        later = [t - t_sent for t in t_back if 0 < t - t_sent < min_gap * 2]
        if later:
            out.append(min(later))
    return out


async def aiortc_call(calls_url: str, ctx, clicks: int) -> dict:
    every = 0.4
    source, starts = click_source(1.0, every, clicks)
    started = time.monotonic()
    call = await rs.client_call(calls_url, KEY, MODEL, ctx, source,
                                session={"instructions": "bench", "audio": {"output": {"voice": "alloy"}}})
    assert call.status == 201, call.body
    try:
        end = time.monotonic() + 5
        while not (call.connected_at() and call.opened) and time.monotonic() < end:
            await asyncio.sleep(0.005)
        connected, opened = call.connected_at(), call.opened
        await asyncio.sleep(0.5)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(1.0 + every * clicks)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        lat = click_latencies(call.track.sent, starts, call.received)
    finally:
        await call.close()
    return {"connected": (connected - started) if connected else None,
            "channel_open": (opened - started) if opened else None,
            "latency": lat, "cpu": cpu}


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--clicks", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtflash-session-bench-") as tmp:
        proc, base = start_standin(Path(tmp))
        try:
            ctx = ssl.create_default_context(cafile=str(Path(tmp) / "ca.pem"))
            runs = [asyncio.run(aiortc_call(base + "/realtime/calls", ctx, args.clicks)) for _ in range(args.calls)]
        finally:
            proc.terminate()
            proc.wait(10)
    lat = [x for r in runs for x in r["latency"]]
    result = {
        "aiortc": {
            "launch_to_connected_s": statistics.median(r["connected"] for r in runs if r["connected"]),
            "launch_to_channel_open_s": statistics.median(r["channel_open"] for r in runs if r["channel_open"]),
            "round_trip_s": statistics.median(lat) if lat else None,
            "clicks_heard": f"{len(lat)}/{args.calls * args.clicks}",
            "cpu_s_per_s": statistics.median(r["cpu"] for r in runs),
        },
        "firmware": None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    a = result["aiortc"]
    print(f"session bench: {args.calls} calls, {args.clicks} clicks each, stand-in echoing, loopback")
    print(f"{'':28}{'aiortc client':>16}{'linux firmware':>18}")
    print(f"{'launch -> connected':28}{fmt_ms(a['launch_to_connected_s']):>16}{'not run':>18}")
    print(f"{'launch -> data channel open':28}{fmt_ms(a['launch_to_channel_open_s']):>16}{'not run':>18}")
    print(f"{'click round trip (median)':28}{fmt_ms(a['round_trip_s']):>16}{'not run':>18}")
    print(f"{'clicks heard back':28}{a['clicks_heard']:>16}{'not run':>18}")
    print(f"{'CPU s per s of call':28}{a['cpu_s_per_s']:>16.3f}{'not run':>18}")


if __name__ == "__main__":
    main()
