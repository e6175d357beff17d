"""The monitor loop: events from the reader and the keyboard in, batches of lines out.

Why one queue for both: the loop blocks on a single `get`, so a line is shown as soon as it arrives
(latency) and everything that piled up while a batch was being drawn is taken at once (throughput).
"""

from __future__ import annotations

import queue
import re
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rtflash.errors import RtflashError
from rtflash.monitor.decoder import PanicDecoder
from rtflash.monitor.keys import HELP, Action, KeyReader
from rtflash.monitor.parser import GarbageDetector, LineSplitter, LogLine, passes
from rtflash.monitor.status import RULES, Status
from rtflash.monitor.view import RawSink, View

Rebuild = Callable[[str], None]  # called with the current port, while the port is closed


@dataclass
class MonitorOptions:
    url: str
    baud: int = 115200
    elf: Path | None = None
    toolchain_prefix: str = ""
    elf_hint: str = "build first (rtflash build) or pass --elf FILE"
    filters: dict[str, int] = field(default_factory=dict)
    reconnect: bool = True
    timeout: float | None = None  # stop after this many seconds (scripts, tests)
    idle_flush: float = 0.1  # show a line without its newline after this pause (prompts)
    max_batch: int = 20000  # events taken per batch before drawing, so keys stay responsive


class Monitor:
    """Joins reader, parser, decoder, status and view. `run()` returns when the user quits or the stream ends."""

    def __init__(self, opts: MonitorOptions, reader, view: View | None = None, raw: RawSink | None = None,
                 rebuild: Rebuild | None = None, stdin=None) -> None:
        self.opts, self.reader, self.view, self.raw = opts, reader, view, raw
        self.events: queue.Queue = reader.events
        self.rebuild, self.stdin = rebuild, stdin
        self.splitter = LineSplitter()
        self.decoder = PanicDecoder(opts.elf, opts.toolchain_prefix, opts.elf_hint)
        self.status = Status()
        self.garbage = GarbageDetector()
        self.pending: list[LogLine] = []
        self.done = False
        self.end_reason = ""
        self.last_data = 0.0
        self.keys: KeyReader | None = None
        self.gone: tuple[float, str] | None = None  # (since, reason) while waiting for the port
        self.lost = ""  # without reconnect: why the port went away (the CLI reports it as its error)

    def run(self) -> str:
        """Monitor until quit, --timeout or (with reconnect off) the end of the stream; returns why it stopped."""
        deadline = time.monotonic() + self.opts.timeout if self.opts.timeout else None
        self.reader.start()
        try:
            with _signals_exit(), KeyReader(self.events, self.stdin) as keys:
                self.keys = keys
                while not self.done:
                    self._tick()
                    if deadline is not None and time.monotonic() >= deadline:
                        self.done, self.end_reason = True, "timeout"
        finally:
            self.reader.stop()
            self._drain_after_stop()
            if self.gone:
                self._notice(f"stopped while waiting for {self.reader.path} to come back (port gone: {self.gone[1]})")
            if self.view is not None:
                self.view.close()
        return self.end_reason

    def _tick(self) -> None:
        try:
            first = self.events.get(timeout=0.05)
        except queue.Empty:
            self._idle()
            return
        batch = [first]
        try:
            while len(batch) < self.opts.max_batch:
                batch.append(self.events.get_nowait())
        except queue.Empty:
            pass
        for event in _coalesce(batch):
            self._event(event)
        self._draw()

    def _event(self, event: tuple) -> None:
        kind = event[0]
        if kind == "data":
            self.last_data = event[2]
            if self.raw is not None:
                self.raw.feed(event[1])
                return
            lines = self.splitter.feed(event[1], event[2])
            if self.garbage.feed(event[1], lines):
                self._notice(self._baud_hint())
            self._process(lines)
        elif kind == "gone":
            self._flush_partial(final=True)
            self._gone(event[1])
        elif kind == "back":
            self._back(event[1], event[2])
        elif kind == "end":
            self.done, self.end_reason = True, "port gone" if self.lost else "stream ended"
        elif kind == "key":
            self._key(event[1])

    def _gone(self, reason: str) -> None:
        """Without reconnect: log it and stop (the CLI fails). With: wait quietly (a status row on a terminal)."""
        if not self.opts.reconnect:
            self.lost = reason
            self._draw()
            if self.view is not None:  # the log records it; the screen gets it once, as the CLI's error
                self.view.notice(f"port {self.reader.path} gone ({reason})", screen=False)
            return
        self.gone = (time.monotonic(), reason)
        self._draw()
        if self.view is not None:
            self.view.transient(f"waiting for {self.reader.path} to come back ({reason}); Ctrl-] quits")

    def _back(self, path: str, why: str) -> None:
        if self.view is not None:
            self.view.transient(None)
        if why == "reconnected" and self.gone:
            since, reason = self.gone
            self._notice(f"reconnected on {path} after {time.monotonic() - since:.1f} s (port gone: {reason})")
        else:
            self._notice(f"{why} on {path}")
        self.gone = None
        if self.status.summary() and self.status.restart(why) and self.view is not None:
            self.view.status(self.status.summary(), self.status.to_dict())  # the device was reset or reflashed

    def _process(self, lines: list[LogLine]) -> None:
        """Status and panic decoding, line by line; decoded frames go right under their line.

        The decoder's said-once notices never land inside a panic block: one found as a panic starts
        (no addr2line, no ELF) is said before its first line, others once the block is over.
        """
        decoder, status = self.decoder, self.status
        changed = False
        for ln in lines:
            if ln.level:
                self.pending.append(ln)
                if ln.tag in RULES and status.observe(ln):
                    changed = True
                if decoder.in_panic or "SHA256" in ln.text:
                    decoder.feed(ln)
            else:
                was_in_panic = decoder.in_panic
                extra = decoder.feed(ln)
                if decoder.notices and decoder.in_panic and not was_in_panic:
                    self._say_decoder_notices()
                self.pending.append(ln)
                self.pending += extra
                if status.restarted(ln.text):
                    changed = True
            if decoder.notices and not decoder.in_panic:
                self._say_decoder_notices()
        if changed and self.view is not None:
            self._draw()
            self.view.status(status.summary(), status.to_dict())

    def _say_decoder_notices(self) -> None:
        for text in self.decoder.notices:
            self._notice(text)
        self.decoder.notices.clear()

    def _draw(self) -> None:
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        if self.view is None:
            return
        self.view.save(lines)
        rules = self.opts.filters
        self.view.show([ln for ln in lines if passes(ln, rules)] if rules else lines)

    def _notice(self, text: str) -> None:
        self._draw()
        if self.view is not None:
            self.view.notice(text)

    def _idle(self, now: float | None = None) -> None:
        """After a pause, show the line the device has not finished (minus any secret still arriving)."""
        now = time.time() if now is None else now
        if self.last_data and now - self.last_data >= self.opts.idle_flush:
            if self.raw is not None:
                self.raw.flush()
            elif self.splitter.tail:
                self._flush_partial()
                self._draw()

    def _flush_partial(self, final: bool = False) -> None:
        """`final`: the stream is cut (port gone, monitor stopping), so nothing held can complete any more."""
        if self.raw is not None:
            self.raw.flush(final)
        else:
            self._process(self.splitter.flush(self.last_data or time.time(), final))

    def _drain_after_stop(self) -> None:
        """Whatever the reader queued before it stopped is still shown."""
        try:
            while True:
                event = self.events.get_nowait()
                if event[0] in ("data", "gone", "back"):
                    self._event(event)
        except queue.Empty:
            pass
        self._flush_partial(final=True)
        self._say_decoder_notices()
        self._draw()

    def _key(self, action: Action) -> None:
        kind = action.kind
        if kind == "quit":
            self.done, self.end_reason = True, "quit"
        elif kind == "send":
            self.reader.write(action.data)
        elif kind == "help":
            self._notice(HELP)
        elif kind == "timestamps" and self.view is not None:
            self.view.timestamps = not self.view.timestamps
            self._notice(f"host timestamps {'on' if self.view.timestamps else 'off'}")
        elif kind == "reset":
            ok = self.reader.reset()
            self._notice("reset the device (EN pulsed through RTS)" if ok else "reset failed: the port is not open")
        elif kind == "rebuild":
            self._rebuild()

    def _rebuild(self) -> None:
        if self.rebuild is None:
            self._notice("rebuild is not available here (no board to build for)")
            return
        self._notice("rebuilding and flashing; the monitor resumes afterwards")
        self._draw()
        if self.view is not None:
            self.view.release()
        self.reader.pause()
        try:
            if self.keys is not None:
                with self.keys.suspended():
                    self.rebuild(self.reader.path)
            else:
                self.rebuild(self.reader.path)
            self._notice("flashed; resuming")
        except RtflashError as exc:
            self._notice(f"rebuild failed: {exc}")
        finally:
            self.reader.resume()

    def _baud_hint(self) -> str:
        fix = ("try --baud 115200" if self.opts.baud != 115200 else
               "check the firmware's console baud rate (CONFIG_ESP_CONSOLE_UART_BAUDRATE) and pass it with --baud")
        return f"{self.reader.path} sends mostly unreadable bytes at {self.opts.baud} baud: wrong baud rate? {fix}"


@contextmanager
def _signals_exit():
    """SIGTERM/SIGHUP end the monitor like an error would: through the `finally`s (terminal, log, port)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum, _frame):
        if signum == signal.SIGTERM:
            from rtflash.errors import Terminated

            raise Terminated()  # the CLI says so in one line, exit 143
        raise SystemExit(128 + signum)

    saved = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _coalesce(batch: list[tuple]) -> list[tuple]:
    """Neighbouring data events become one (stamped with the last arrival): fewer, bigger parser passes."""
    out: list[tuple] = []
    chunks: list[bytes] = []
    for event in batch:
        if event[0] == "data":
            chunks.append(event[1])
            stamp = event[2]
            continue
        if chunks:
            out.append(("data", b"".join(chunks), stamp))
            chunks = []
        out.append(event)
    if chunks:
        out.append(("data", b"".join(chunks), stamp))
    return out


def compile_grep(pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        from rtflash.errors import ConfigError

        raise ConfigError(f"--grep {pattern!r}: not a valid regular expression ({exc})") from None
