"""Rendering batches of lines: a terminal (rich styles), plain text, JSON lines, a log file, raw bytes.

Why batches and precomputed styles: printing line by line through a full rich render pipeline tops
out far below what a 2 Mbaud console produces. rich still decides whether and how to colour (TTY,
NO_COLOR, colour system) and produces the escape codes, once per style; each batch is then a single
write. The status line lives on the terminal's last row, redrawn after each batch.
"""

from __future__ import annotations

import json
import re
import time
from typing import TextIO

from rtflash.monitor.parser import LogLine
from rtflash.redact import held_tail, mask_unfinished, redact, redact_bytes

STYLES = {"E": "red", "W": "yellow", "I": "green", "D": "", "V": "dim", "panic": "bold red",
          "decoded": "cyan", "notice": "bold magenta", "time": "dim", "grep": "bold black on yellow",
          "status": "reverse"}


class View:
    """Where lines go. `mode` is terminal (colour, status row), plain (text, status changes on `err`) or json."""

    def __init__(self, out: TextIO, err: TextIO, mode: str = "plain", timestamps: bool = False,
                 grep: re.Pattern[str] | None = None, log: TextIO | None = None, color_system: str | None = None,
                 width: int = 80) -> None:
        self.out, self.err, self.mode, self.log = out, err, mode, log
        self.timestamps, self.grep, self.width = timestamps, grep, width
        self._codes = _codes(color_system if mode == "terminal" else None)
        self._status = ""
        self._transient = ""
        self._status_shown = False
        self._second, self._second_text = -1, ""
        self.lines_shown = 0
        self._log_open = False
        self._out_open = False  # plain mode: the last line written is partial (its newline still to come)

    def show(self, lines: list[LogLine]) -> None:
        """Write the visible lines of a batch, in one write."""
        if not lines:
            return
        if self.mode == "json":
            self.out.write("".join(json.dumps({"type": "line", **ln.to_dict()}) + "\n" for ln in lines))
        elif self.mode == "terminal":
            self.out.write(self._unstatus() + "".join(self._styled(ln) for ln in lines) + self._status_row())
        else:  # a pipe cannot take a line back: a partial one stays open until its rest arrives
            parts = []
            for ln in lines:
                head = self._stamp(ln.host_time) + " " if self.timestamps and not self._out_open else ""
                self._out_open = ln.partial and ln.kind == "log"
                parts.append(head + ln.text + ("" if self._out_open else "\n"))
            self.out.write("".join(parts))
        self.lines_shown += len(lines)
        self.out.flush()

    def save(self, lines: list[LogLine]) -> None:
        """Append every line (filters do not apply) to the --log file as plain text."""
        if self.log is None or not lines:
            return
        stamp = self.timestamps
        self.log.write("".join((self._stamp(ln.host_time) + " " if stamp else "") + ln.text
                               + ("" if ln.partial and ln.kind == "log" else "\n") for ln in lines))
        self._log_open = lines[-1].partial and lines[-1].kind == "log"  # the rest of the line may follow
        self.log.flush()

    def notice(self, text: str, screen: bool = True) -> None:
        """rtflash's own one-line messages (reconnects, decoder problems): in the stream on a terminal.

        `screen=False`: only the log gets it (the CLI says it itself, as its one error line).
        """
        text = redact(text)
        if self.log is not None:
            self.log.write(("\n" if self._log_open else "") + f"--- rtflash: {text}\n")
            self._log_open = False
            self.log.flush()
        if not screen:
            return
        if self.mode == "terminal":
            pre, post = self._codes["notice"]
            self.out.write(f"{self._unstatus()}{pre}--- {text}{post}\n{self._status_row()}")
            self.out.flush()
        else:
            if self._out_open:  # something happened (a reconnect, a reset): the open line ends here
                self.out.write("\n")
                self._out_open = False
                self.out.flush()
            self.err.write(f"--- {text}\n")
            self.err.flush()

    def status(self, summary: str, data: dict | None = None) -> None:
        """A new status summary: redrawn in place on a terminal, one line (or JSON object) elsewhere."""
        summary = redact(summary)
        if summary == self._status:
            return
        self._status = summary
        if self.mode == "terminal":
            self.out.write(self._unstatus() + self._status_row())
            self.out.flush()
        elif self.mode == "json":
            self.out.write(redact(json.dumps({"type": "status", "summary": summary, **(data or {})})) + "\n")
            self.out.flush()
        else:
            self.err.write(f"--- status: {summary}\n")
            self.err.flush()

    def transient(self, text: str | None) -> None:
        """A passing state (waiting for the device) shown in the status row on a terminal; gone when cleared."""
        self._transient = redact(text) if text else ""
        if self.mode == "terminal":
            self.out.write(self._unstatus() + self._status_row())
            self.out.flush()

    def release(self) -> None:
        """Clear the status row before someone else writes to the terminal (the Ctrl-T F build)."""
        if self.mode == "terminal" and self._status_shown:
            self.out.write(self._unstatus())
            self.out.flush()

    def close(self) -> None:
        if self.log is not None and self._log_open:
            self.log.write("\n")
            self._log_open = False
        if self._out_open:
            self.out.write("\n")
            self._out_open = False
            self.out.flush()
        if self.mode == "terminal" and self._status_shown:
            self.out.write(self._unstatus() + f"--- status: {self._status}\n")
            self.out.flush()

    def _styled(self, ln: LogLine) -> str:
        pre, post = self._codes.get(ln.level if ln.kind == "log" else ln.kind, ("", ""))
        text = ln.text
        if self.grep is not None:
            text = self._highlight(text, pre, post)
        head = ""
        if self.timestamps:
            tpre, tpost = self._codes["time"]
            head = f"{tpre}{self._stamp(ln.host_time)}{tpost} "
        return f"{head}{pre}{text}{post}\n"

    def _highlight(self, text: str, pre: str, post: str) -> str:
        gpre, gpost = self._codes["grep"]
        if not gpre:
            return text
        return self.grep.sub(lambda m: f"{post}{gpre}{m[0]}{gpost}{pre}" if m[0] else "", text)

    def _stamp(self, t: float) -> str:
        """Host time as HH:MM:SS.mmm; strftime once per second."""
        second = int(t)
        if second != self._second:
            self._second, self._second_text = second, time.strftime("%H:%M:%S", time.localtime(second))
        return f"{self._second_text}.{int((t - second) * 1000):03d}"

    def _unstatus(self) -> str:
        if not self._status_shown:
            return ""
        self._status_shown = False
        return "\r\x1b[2K"

    def _status_row(self) -> str:
        row = self._transient or self._status
        if not row:
            return ""
        self._status_shown = True
        pre, post = self._codes["notice" if self._transient else "status"]
        return f"{pre}{row[: max(self.width - 1, 10)]}{post}"


def _codes(color_system: str | None) -> dict[str, tuple[str, str]]:
    """The escape codes rich produces for each style (empty without colour), split around the text."""
    if not color_system:
        return {name: ("", "") for name in STYLES}
    from rich.console import COLOR_SYSTEMS
    from rich.style import Style

    system = COLOR_SYSTEMS[color_system]
    codes = {}
    for name, spec in STYLES.items():
        rendered = Style.parse(spec).render("\0", color_system=system) if spec else "\0"
        pre, _, post = rendered.partition("\0")
        codes[name] = (pre, post)
    return codes


class RawSink:
    """--raw: device bytes passed through untouched, except that secrets are masked.

    A secret may straddle two reads or a pause, so a tail that could be the start of one (a registered
    secret's prefix, or an unfinished key shape) is held back until it is whole or cannot be one any
    more; only the `final` flush (the stream is cut) lets it out, a secret cut short there masked.
    """

    def __init__(self, out, log=None) -> None:
        self.out, self.log = out, log
        self.held = b""
        self.bytes_written = 0

    def feed(self, chunk: bytes) -> None:
        data = self.held + chunk
        keep = held_tail(data)
        self.held = data[len(data) - keep:] if keep else b""
        self._write(_redact_raw(data[: len(data) - keep]))

    def flush(self, final: bool = False) -> None:
        """After a pause the held part stays held (it may still become a secret); at the end it goes."""
        if final:
            data, self.held = mask_unfinished(self.held), b""
            self._write(_redact_raw(data))

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self.bytes_written += len(data)
        self.out.write(data)
        self.out.flush()
        if self.log is not None:
            self.log.write(data)
            self.log.flush()


def _redact_raw(data: bytes) -> bytes:
    """Registered secrets (any encoding), then key shapes; latin-1 keeps every other byte as it was."""
    return redact(redact_bytes(data).decode("latin-1")).encode("latin-1")
