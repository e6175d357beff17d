"""Bytes from the device -> `LogLine`s.

Why bytes are split before decoding: a multi-byte UTF-8 character or a colour escape may be cut in
two by a read; only complete lines are decoded, the tail waits for the next chunk. Nothing here may
raise on any input: invalid UTF-8 and control bytes (NUL, BEL, stray ESC) become visible `\\xNN`
escapes, so binary noise is shown, not fatal, and never moves the terminal's cursor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rtflash.redact import held_tail, mask_unfinished, redact

# ESP-IDF's log format (components/log): "X (TIME) TAG: TEXT", TIME in ms since boot or, with
# CONFIG_LOG_TIMESTAMP_SOURCE_SYSTEM, a wall clock "hh:mm:ss.mmm"; log v2 may omit it.
LOG_RE = re.compile(r"([EWIDV]) (?:\(([^)]{1,24})\) )?([^:]{1,64}): (.*)", re.DOTALL)
_match = LOG_RE.match
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
LEVELS = "NEWIDV"  # none, error, warning, info, debug, verbose: the order of ESP-IDF's esp_log_level_t
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x09), *range(0x0A, 0x20), 0x7F]}
_PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t\r\n\x1b"


@dataclass(slots=True)
class LogLine:
    """One line as shown: `text` is escaped, colour-free and redacted; level "" means not an ESP-IDF log line."""

    text: str
    host_time: float = 0.0
    level: str = ""
    device_time: str = ""
    tag: str = ""
    message: str = ""
    partial: bool = False  # shown after a pause before its newline arrived (a prompt, or a stalled line)
    kind: str = "log"  # log | panic | decoded | notice

    def to_dict(self) -> dict:
        return {"host_time": round(self.host_time, 6), "level": self.level or None,
                "device_time": self.device_time or None, "tag": self.tag or None,
                "message": self.message if self.level else self.text, "text": self.text, "kind": self.kind}


def clean(text: str) -> str:
    """Drop the stream's own colour escapes and make every other control character visible."""
    if "\x1b" in text:
        text = ANSI_RE.sub("", text)
    if not text.isprintable():
        text = text.translate(_ESCAPES)
        if not text.replace("\t", " ").isprintable():  # C1 controls, bidi overrides, line separators
            text = "".join(c if c.isprintable() or c == "\t" else f"\\u{ord(c):04x}" for c in text)
    return text


def parse(text: str, host_time: float = 0.0, partial: bool = False) -> LogLine:
    """Split an ESP-IDF log line into level, device time, tag and text; any other line stays plain."""
    m = _match(text)
    if m is None:
        return LogLine(text, host_time, partial=partial)
    level, device_time, tag, message = m.groups()
    return LogLine(text, host_time, level, device_time or "", tag, message, partial)


def decode_lines(data: bytes) -> list[str]:
    """Complete lines (joined by b"\\n") -> cleaned, redacted text lines; one pass per batch where possible."""
    text = redact(data.decode("utf-8", "backslashreplace"))
    if "\x1b" in text:
        text = ANSI_RE.sub("", text)  # a CSI sequence never spans a newline: one pass for the batch
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if text.replace("\n", " ").isprintable():  # the usual case: nothing to escape anywhere
        return text.split("\n")
    return [clean(line.removesuffix("\r")) for line in text.split("\n")]


class LineSplitter:
    """Feed chunks, get complete lines; the unfinished tail is kept, or handed out by `flush()`.

    A tail shown before its newline (a prompt, a stalled line) is cut where no secret can straddle
    the cut (`redact.held_tail`): a key printed in two halves is held until it is whole, never shown
    in pieces that each escape redaction.
    """

    def __init__(self, max_line: int = 8192) -> None:
        self.tail = b""
        self.max_line = max_line  # a stream with no newline at all (binary) is still shown, in pieces
        self._settled = False  # the tail is what the last flush held back: flushing again shows nothing

    def feed(self, chunk: bytes, host_time: float = 0.0) -> list[LogLine]:
        data = self.tail + chunk if self.tail else chunk
        self._settled = False
        end = data.rfind(b"\n")
        if end < 0:
            self.tail = data
            return self.flush(host_time) if len(data) > self.max_line else []
        self.tail = data[end + 1:]
        lines = [parse(t, host_time) for t in decode_lines(data[:end])]
        if len(self.tail) > self.max_line:
            lines += self.flush(host_time)
        return lines

    def flush(self, host_time: float = 0.0, final: bool = False) -> list[LogLine]:
        """The pending partial line as a line of its own, after an idle pause or, `final`, at the end.

        Before the end, a part that could still become a secret (or an unfinished UTF-8 character)
        stays in `tail`; at the end a secret cut short there is masked whole.
        """
        if not self.tail or (self._settled and not final):
            return []
        data = self.tail
        if final:
            self.tail, data = b"", mask_unfinished(data)
        else:
            keep = held_tail(data) or _open_utf8(data)
            self.tail, data = data[len(data) - keep:], data[: len(data) - keep]
            self._settled = True
        if not data:
            return []
        return [parse(t, host_time, partial=True) for t in decode_lines(data.rstrip(b"\r"))]


def _open_utf8(data: bytes) -> int:
    """Trailing bytes of a UTF-8 character still incomplete (0 when the data ends on a character)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:  # a lead byte: complete if it announced exactly `back` bytes
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back if need > back else 0
    return 0


def parse_filters(specs: list[str] | tuple[str, ...]) -> dict[str, int]:
    """`--filter tag:level` (esp-idf-monitor's print_filter rules): {tag: max level index}; `*` is every other tag."""
    rules: dict[str, int] = {}
    for spec in specs:
        for item in spec.replace(",", " ").split():
            tag, _, level = item.partition(":")
            level = (level or "V").upper().replace("*", "V")
            if not tag or len(level) != 1 or level not in LEVELS:
                raise ValueError(f"--filter {item!r}: use TAG:LEVEL with LEVEL one of N E W I D V "
                                 "(e.g. wifi_sta:D or *:W)")
            rules[tag] = LEVELS.index(level)
    return rules


def passes(line: LogLine, rules: dict[str, int]) -> bool:
    """Whether a line survives the filter: a listed tag uses its level, others `*` (none when not given)."""
    if not rules or line.kind in ("panic", "decoded", "notice"):
        return True
    if line.level:
        limit = rules.get(line.tag, rules.get("*", 0))
        return LEVELS.index(line.level) <= limit
    return rules.get("*", 0) > 0


class GarbageDetector:
    """Notices a wrong baud rate: mostly unprintable bytes and not one ESP-IDF log line in the first KiB."""

    def __init__(self, window: int = 512, threshold: float = 0.3) -> None:
        self.window, self.threshold = window, threshold
        self.seen = self.bad = 0
        self.good_lines = 0
        self.said = False

    def feed(self, chunk: bytes, lines: list[LogLine]) -> bool:
        """True exactly once, when the stream looks like a wrong baud rate."""
        if self.said:
            return False
        self.good_lines += sum(1 for ln in lines if ln.level)
        self.seen += len(chunk)
        self.bad += len(chunk.translate(None, _PRINTABLE))
        if self.good_lines:
            self.seen = self.bad = 0
            self.good_lines = 0
            return False
        if self.seen >= self.window and self.bad / self.seen >= self.threshold:
            self.said = True
            return True
        if self.seen >= 4 * self.window:
            self.seen = self.bad = 0
        return False
