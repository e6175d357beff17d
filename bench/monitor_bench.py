"""Monitor figures: lines/s rendered, bytes lost and latency, rtflash vs esp-idf-monitor on the same stream.

Both monitors read the same ESP-IDF-shaped log (colour escapes, mixed levels and tags) from a pty and
draw to another pty (a terminal: colours on), in the same run:

- flat out:     the whole stream written as fast as the pty takes it
- 2 Mbaud:      paced at 2,000,000 baud (200,000 bytes/s, 10 bits a byte) in 512-byte bursts, with
                no flow control: a burst that does not fit the pty's buffer is dropped, as a UART overruns
- trickle:      one line every 10 ms, for the latency from a byte written to its line shown

Each line carries a sequence number; a line counts as shown when its number appears on the output
terminal; bytes lost are the bytes of the lines never shown. esp-idf-monitor is run as
`python -m esp_idf_monitor --port PTY --no-reset --disable-address-decoding` with stdin from
/dev/null (its non-interactive mode). It sets DTR/RTS after opening, which a pty refuses (ENOTTY), so
for it pyserial's modem-line updates ignore ENOTTY, as pyserial's own open() already does.

    .venv/bin/python bench/monitor_bench.py [--lines 100000] [--seconds 5] [--repeat 3] [--json]

Lines/s is the median of the runs; bytes lost is the worst run's. Latency is meaningful in the paced
and trickle cases (flat out it is mostly queueing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BAUD = 2_000_000
BYTES_PER_SECOND = BAUD / 10
SEQ_RE = re.compile(rb"seq=(\d{7})")
TAGS = (b"wifi_sta", b"rt_session", b"audio", b"esp_netif", b"app")
LEVELS = ((b"I", b"\x1b[0;32m"), (b"W", b"\x1b[0;33m"), (b"I", b"\x1b[0;32m"), (b"E", b"\x1b[0;31m"),
          (b"D", b""), (b"I", b"\x1b[0;32m"))
SHIM = """import errno, runpy, sys, serial.serialposix as sp
for name in ("_update_rts_state", "_update_dtr_state"):
    def quiet(self, _f=getattr(sp.Serial, name)):
        try:
            _f(self)
        except OSError as exc:
            if exc.errno != errno.ENOTTY:
                raise
    setattr(sp.Serial, name, quiet)
sys.argv[0] = "idf-monitor"
runpy.run_module("esp_idf_monitor", run_name="__main__")
"""


def make_lines(count: int, start: int = 0) -> list[bytes]:
    out = []
    for seq in range(start, start + count):
        level, colour = LEVELS[seq % len(LEVELS)]
        tag = TAGS[seq % len(TAGS)]
        text = b"%s (%d) %s: seq=%07d rssi=-61 heap=182344 frames=%d opus 20 ms ok" % (
            level, 1000 + seq * 3, tag, seq, seq * 7)
        out.append(colour + text + (b"\x1b[0m" if colour else b"") + b"\r\n")
    return out


class Screen:
    """Drains the monitor's terminal (a pty master) and notes when each sequence number first shows."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen: dict[int, float] = {}
        self.text = bytearray()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        tail = b""
        while not self.stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 1 << 20)
            except OSError:
                return
            now = time.perf_counter()
            if len(self.text) < 8192:
                self.text += data
            data = tail + data
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            for m in SEQ_RE.finditer(data, 0, cut):
                self.seen.setdefault(int(m[1]), now)

    def wait_for(self, needle: bytes, timeout: float = 20) -> None:
        end = time.monotonic() + timeout
        while needle not in self.text:
            if time.monotonic() > end:
                raise SystemExit(f"monitor did not start: {bytes(self.text)[-500:]!r}")
            time.sleep(0.02)


def command(tool: str, device: str) -> tuple[list[str], bytes]:
    if tool == "cat":  # the harness's own ceiling: bytes copied through untouched
        return ["sh", "-c", f"stty raw -echo < {device}; echo cat ready; exec cat {device}"], b"cat ready"
    if tool == "rtflash":
        exe = str(Path(sys.executable).parent / "rtflash")
        return [exe, "monitor", "--port", device, "--baud", str(BAUD), "--no-reconnect"], b"monitoring"
    return ([sys.executable, "-c", SHIM, "--port", device, "--baud", str(BAUD), "--no-reset",
             "--disable-address-decoding", "--target", "esp32s3"], b"watching serial output")


def run_case(tool: str, lines: list[bytes], pace: float | None, burst: int) -> dict:
    """Start `tool` on a fresh pty, write `lines` (paced at `pace` bytes/s, else flat out), measure."""
    dev_master, dev_slave = os.openpty()
    term_master, term_slave = os.openpty()
    argv, ready = command(tool, os.ttyname(dev_slave))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "50"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=term_slave, stderr=term_slave, env=env,
                            cwd=tempfile.gettempdir(), start_new_session=True)
    screen = Screen(term_master)
    try:
        screen.wait_for(ready)
        time.sleep(1.0)  # the port is open and flushed (pyserial's open) before the first byte
        written = write(dev_master, lines, pace, burst)
        last = int(SEQ_RE.search(lines[-1])[1])
        first = int(SEQ_RE.search(lines[0])[1])
        idle_end = time.monotonic() + 5
        count = 0
        while last not in screen.seen and time.monotonic() < idle_end:
            time.sleep(0.05)
            if len(screen.seen) != count:
                count, idle_end = len(screen.seen), time.monotonic() + 5
        return measure(tool, lines, first, written, screen.seen)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        screen.stop.set()
        screen.thread.join()  # before the fds close: a new pty may get the same numbers
        for fd in (dev_master, dev_slave, term_master, term_slave):
            os.close(fd)


def write(fd: int, lines: list[bytes], pace: float | None, burst: int) -> list[float]:
    """Write the lines; returns, per line, when the write holding its last byte returned.

    Paced, the pty is non-blocking, like a UART without flow control: what does not fit in the
    kernel's buffer when it arrives is dropped (and its lines count as lost), instead of the
    writer waiting for a slow monitor. Flat out, writes block: that run measures speed only.
    """
    os.set_blocking(fd, not pace)
    stamps: list[float] = []
    start = time.perf_counter()
    sent = 0
    pending: list[bytes] = []
    size = 0
    for line in lines:
        pending.append(line)
        size += len(line)
        if size < burst and line is not lines[-1]:
            continue
        data = b"".join(pending)
        if pace:
            delay = start + (sent + len(data)) / pace - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                break  # overrun: the rest of this burst is lost
        now = time.perf_counter()
        stamps += [now] * len(pending)
        sent += len(data)
        pending, size = [], 0
    return stamps


def measure(tool: str, lines: list[bytes], first: int, written: list[float], seen: dict[int, float]) -> dict:
    shown = [i for i in range(len(lines)) if first + i in seen]
    lost_bytes = sum(len(lines[i]) for i in range(len(lines)) if first + i not in seen)
    latencies = sorted(seen[first + i] - written[i] for i in shown)
    span = (max(seen[first + i] for i in shown) - written[0]) if shown else 0.0
    return {"tool": tool, "lines_sent": len(lines), "lines_shown": len(shown),
            "bytes_sent": sum(map(len, lines)), "bytes_lost": lost_bytes, "seconds": round(span, 3),
            "lines_per_s": round(len(shown) / span) if span else 0,
            "latency_median_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
            "latency_p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2) if latencies else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines for the flat-out run")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the 2 Mbaud run")
    parser.add_argument("--trickle", type=int, default=300, help="lines for the latency run, 10 ms apart")
    parser.add_argument("--tools", default="rtflash,idf-monitor", help="also: cat (the harness's ceiling)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case and tool; the median is shown")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    line_len = len(make_lines(1)[0])
    paced_lines = int(args.seconds * BYTES_PER_SECOND / line_len)
    cases = [("flat out", make_lines(args.lines), None, 1 << 16),
             ("2 Mbaud", make_lines(paced_lines, 2_000_000), BYTES_PER_SECOND, 512),
             ("trickle 10 ms", make_lines(args.trickle, 4_000_000), line_len / 0.010, 1)]
    results = []
    for name, lines, pace, burst in cases:
        for tool in args.tools.split(","):
            runs = sorted((run_case(tool, lines, pace, burst) for _ in range(args.repeat)),
                          key=lambda r: r["lines_per_s"])
            result = runs[len(runs) // 2]  # the median run
            result["case"] = name
            result["lines_per_s_runs"] = [r["lines_per_s"] for r in runs]
            result["bytes_lost_runs"] = [r["bytes_lost"] for r in runs]
            results.append(result)
            if not args.json:
                print(f"{name:>13}  {tool:<11} {result['lines_shown']:>7}/{result['lines_sent']:<7} lines  "
                      f"{result['lines_per_s']:>8} lines/s  lost {max(result['bytes_lost_runs']):>8} B  "
                      f"latency median {result['latency_median_ms']} ms, p95 {result['latency_p95_ms']} ms",
                      flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        summary(results)
    return 0


def summary(results: list[dict]) -> None:
    by = {(r["case"], r["tool"]): r for r in results}
    flat = by.get(("flat out", "rtflash")), by.get(("flat out", "idf-monitor"))
    if all(flat) and flat[1]["lines_per_s"]:
        print(f"flat out: rtflash renders {flat[0]['lines_per_s'] / flat[1]['lines_per_s']:.1f}x "
              f"esp-idf-monitor's line rate")
    paced = by.get(("2 Mbaud", "rtflash"))
    if paced:
        print(f"2 Mbaud: rtflash lost {max(paced['bytes_lost_runs'])} bytes of {paced['bytes_sent']} "
              f"(worst of {len(paced['bytes_lost_runs'])} runs); median latency {paced['latency_median_ms']} ms")


if __name__ == "__main__":
    sys.exit(main())
