"""Voice-session figures on loopback against the Realtime API stand-in (testkit/realtime_standin.py).

The stand-in runs as its own process (`python -m testkit.realtime_standin --play echo`): it echoes the
audio it receives, so a click sent by the client comes back. Measured per client:

- time to first audio, N runs (--calls, 10 by default), median and max: from the start (aiortc: creating the
  offer, interpreter already up; firmware: process launch) to the peer connection connected (DTLS done),
  to the data channel open, and to the first RTP packet received from the stand-in
- round trip: click sent -> click heard back (both Opus encoders, both jitter buffers, the echo's 20 ms
  frame); median of the clicks
- CPU: process CPU seconds per second of call, in the steady part of the call (client process only;
  the stand-in's own CPU is its separate process and not counted)

The aiortc client is the reference column. The firmware column is the real linux firmware (a process,
as tests/test_e2e_session.py drives it) against the same stand-in, when --elf names its build:
launch = process start; connected / channel open / first RTP = when its "peer state: CONNECTED" (DTLS and
SRTP up; "peer state: ICE_CONNECTED" comes before), "datachannel open" and "audio: first packet" lines
arrive on its stdout (the aiortc client: its own connection state, channel open event and first RTP
header decrypted); both clients talk to the same stand-in process on the same loopback path; round trip = the
click's position in the speaker WAV minus its position in the mic WAV (one task reads a mic frame and
writes a speaker frame each 20 ms, so both files share one timeline: mic framing, Opus both ways,
libpeer, the stand-in's echo and the firmware's speaker ring are inside it); CPU from /proc/PID/stat.

    .venv/bin/python bench/session_bench.py [--calls 10] [--clicks 5] [--elf build/linux/rtflash_firmware.elf] [--json]
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
import threading
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit import realtime_standin as rs

KEY = "sk-bench-" + "0" * 24
MODEL = "gpt-realtime"
CLICK = 0.005  # 5 ms burst
THRESHOLD = 4000


def start_standin(pki_dir: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "RTFLASH_STANDIN_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "testkit.realtime_standin", "--pki-dir", str(pki_dir),
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
        end = time.monotonic() + 5
        while not call.rtp and time.monotonic() < end:
            await asyncio.sleep(0.005)
        first_rtp = call.rtp[0].arrival if call.rtp else None
        await asyncio.sleep(0.5)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(1.0 + every * clicks)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
        lat = click_latencies(call.track.sent, starts, call.received)
    finally:
        await call.close()
    return {"connected": (connected - started) if connected else None,
            "channel_open": (opened - started) if opened else None,
            "first_rtp": (first_rtp - started) if first_rtp else None,
            "latency": lat, "cpu": cpu}


FW_RATE = 16000  # CONFIG_RT_AUDIO_SAMPLE_RATE of the linux board


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/PID/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def firmware_call(elf: Path, calls_url: str, ca_file: Path, tmp: Path, clicks: int,
                  standin: rs.StandIn | None = None) -> dict:
    """One call of the linux firmware: clicks in its mic WAV, their echo found in its speaker WAV. With
    `standin` (in this process), also when each click came out of the stand-in's decoder: the split."""
    every, first = 0.4, 2.0
    n = int((first + every * clicks + 1.0) * FW_RATE)
    mic = np.zeros(n, np.int16)
    burst = (0.6 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(int(CLICK * FW_RATE)) / FW_RATE)).astype(np.int16)
    starts = [int((first + i * every) * FW_RATE) for i in range(clicks)]
    for st in starts:
        mic[st : st + len(burst)] = burst
    mic_path, spk_path = tmp / "fw-mic.wav", tmp / "fw-speaker.wav"
    with wave.open(str(mic_path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(FW_RATE)
        w.writeframes(mic.astype("<i2").tobytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "OPENAI_", "RT_WAV"))}
    env.update({"OPENAI_API_KEY": KEY, "RTFLASH_API_URL": calls_url, "RTFLASH_CA_FILE": str(ca_file),
                "RTFLASH_ICE_IFACE": "lo", "RTFLASH_MODEL": MODEL, "RT_WAV_IN": str(mic_path),
                "RT_WAV_OUT": str(spk_path)})
    seen: dict[str, float] = {}
    started = time.monotonic()
    proc = subprocess.Popen([str(elf)], env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            for key in ("rt_audio: microphone", "peer state: ICE_CONNECTED", "peer state: CONNECTED",
                        "datachannel open", "audio: first packet"):
                if key in line and key not in seen:
                    seen[key] = time.monotonic()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        end = time.monotonic() + 10
        while not {"datachannel open", "audio: first packet"} <= set(seen) and time.monotonic() < end \
                and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(max(0.0, started + first - 0.5 - time.monotonic()))
        cpu0, wall0 = proc_cpu_seconds(proc.pid), time.monotonic()
        time.sleep(max(0.0, started + first + every * clicks + 0.5 - time.monotonic()))
        cpu = (proc_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - wall0)
    finally:
        proc.terminate()
        proc.wait(10)
        reader.join(5)
    with wave.open(str(spk_path), "rb") as w:
        spk = np.abs(np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int32))
    hits, last = [], -FW_RATE
    for idx in np.flatnonzero(spk > THRESHOLD // 2):
        if idx - last > 0.25 * FW_RATE:
            hits.append(int(idx))
        last = idx
    lat = []
    for st in starts:
        later = [(h - st) / FW_RATE for h in hits if 0 < h - st < 0.5 * FW_RATE]
        if later:
            lat.append(min(later))
    up = []
    if standin is not None and standin.calls and "rt_audio: microphone" in seen:
        # the mic task starts right after logging its file: WAV sample i is played at t0 + i / rate
        t0, rec = seen["rt_audio: microphone"], standin.calls[-1].received
        got = np.abs(rec.pcm().astype(np.int32))
        heard, last = [], -rs.RATE
        for idx in np.flatnonzero(got > THRESHOLD):
            if idx - last > 0.25 * rs.RATE:
                heard.append(time_of(int(idx), rec.times))
            last = idx
        for st in starts:
            later = [t - (t0 + st / FW_RATE) for t in heard if 0 < t - (t0 + st / FW_RATE) < 0.5]
            if later:
                up.append(min(later))
    at = {k: v - started for k, v in seen.items()}
    return {"connected": at.get("peer state: CONNECTED"), "ice_connected": at.get("peer state: ICE_CONNECTED"),
            "channel_open": at.get("datachannel open"), "first_rtp": at.get("audio: first packet"),
            "latency": lat, "up": up, "cpu": cpu}


def med_max(runs: list[dict], key: str) -> tuple[float | None, float | None, int]:
    """(median, max, how many runs got there) of one time of the runs."""
    got = [r[key] for r in runs if r.get(key) is not None]
    return (statistics.median(got), max(got), len(got)) if got else (None, None, 0)


def summary(runs: list[dict], calls: int, clicks: int) -> dict:
    lat = [x for r in runs for x in r["latency"]]
    conn, opened, rtp = med_max(runs, "connected"), med_max(runs, "channel_open"), med_max(runs, "first_rtp")
    return {
        "runs": len(runs),
        "launch_to_connected_s": conn[0],
        "launch_to_connected_max_s": conn[1],
        "launch_to_channel_open_s": opened[0],
        "launch_to_channel_open_max_s": opened[1],
        "launch_to_first_rtp_s": rtp[0],
        "launch_to_first_rtp_max_s": rtp[1],
        "first_rtp_runs": f"{rtp[2]}/{len(runs)}",
        "round_trip_s": statistics.median(lat) if lat else None,
        "clicks_heard": f"{len(lat)}/{calls * clicks}",
        "cpu_s_per_s": statistics.median(r["cpu"] for r in runs),
    }


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--clicks", type=int, default=5)
    ap.add_argument("--elf", type=Path, default=None,
                    help="the linux firmware build (rtflash build --board linux: build/linux/rtflash_firmware.elf)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.elf is not None and not args.elf.is_file():
        raise SystemExit(f"--elf {args.elf}: no such file; build it with `rtflash build --board linux`")
    with tempfile.TemporaryDirectory(prefix="rtflash-session-bench-") as tmp:
        proc, base = start_standin(Path(tmp))
        try:
            ctx = ssl.create_default_context(cafile=str(Path(tmp) / "ca.pem"))
            runs = [asyncio.run(aiortc_call(base + "/realtime/calls", ctx, args.clicks)) for _ in range(args.calls)]
            fw_runs = [firmware_call(args.elf, base + "/realtime/calls", Path(tmp) / "ca.pem", Path(tmp), args.clicks)
                       for _ in range(args.calls)] if args.elf else []
        finally:
            proc.terminate()
            proc.wait(10)
    split = None
    if args.elf:  # one more firmware call against a stand-in in this process, to see the click leave its decoder
        with tempfile.TemporaryDirectory(prefix="rtflash-session-bench-") as tmp:
            pki = rs.make_pki(Path(tmp))
            with rs.StandInThread(pki, KEY, play="echo") as server:
                one = firmware_call(args.elf, server.standin.calls_url, pki.ca_file, Path(tmp), args.clicks,
                                    server.standin)
        if one["up"] and one["latency"]:
            up, total = statistics.median(one["up"]), statistics.median(one["latency"])
            split = {"uplink_s": up, "downlink_s": total - up, "round_trip_s": total}
    result = {"aiortc": summary(runs, args.calls, args.clicks),
              "firmware": summary(fw_runs, args.calls, args.clicks) if fw_runs else None,
              "firmware_split": split}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    a, f = result["aiortc"], result["firmware"]

    def col(key: str, fmt) -> str:
        return "not run (--elf)" if f is None else fmt(f[key])

    print(f"session bench: {args.calls} calls, {args.clicks} clicks each, stand-in echoing, loopback")
    print(f"{'':34}{'aiortc':>10}{'linux firmware':>18}")
    for label, key in (("launch -> connected", "launch_to_connected"),
                       ("launch -> data channel open", "launch_to_channel_open"),
                       ("launch -> first RTP in", "launch_to_first_rtp")):
        for stat, suffix in (("median", "_s"), ("max", "_max_s")):
            print(f"{label + ' ' + stat:34}{fmt_ms(a[key + suffix]):>10}{col(key + suffix, fmt_ms):>18}")
    print(f"{'runs reaching first RTP':34}{a['first_rtp_runs']:>10}{col('first_rtp_runs', str):>18}")
    if f is not None and f["launch_to_first_rtp_s"] and a["launch_to_first_rtp_s"]:
        ratio = f["launch_to_first_rtp_s"] / a["launch_to_first_rtp_s"]
        print(f"{'first RTP: firmware / aiortc':34}{ratio:>27.2f}x  (goal <= 2x)")
    print(f"{'click round trip (median)':34}{fmt_ms(a['round_trip_s']):>10}{col('round_trip_s', fmt_ms):>18}")
    print(f"{'clicks heard back':34}{a['clicks_heard']:>10}{col('clicks_heard', str):>18}")
    print(f"{'CPU s per s of call':34}{a['cpu_s_per_s']:>10.3f}{col('cpu_s_per_s', lambda v: f'{v:.3f}'):>18}")
    if split:
        print(f"firmware round trip split (one call, stand-in in-process, {fmt_ms(split['round_trip_s'])} in all):")
        print(f"  mic WAV -> stand-in decoder output  {fmt_ms(split['uplink_s']):>7}  (20 ms framing, Opus encode, "
              "libpeer/SRTP, aiortc's jitter buffer + decode)")
        print(f"  stand-in decoder -> speaker WAV     {fmt_ms(split['downlink_s']):>7}  (the echo's 20 ms pacing, aiortc "
              "encode, libpeer, Opus decode, speaker ring: no jitter buffer in the firmware)")


if __name__ == "__main__":
    main()
