"""Reading build tool output: ninja's `[N/M]` progress, the first compiler error, the saved log."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

_STEP = re.compile(r"^\[(\d+)/(\d+)\]\s+(.*)$")
_ERROR = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::(?P<col>\d+))?:\s+(?:fatal )?error:\s+(?P<msg>.*)$")
_TOOL_ERROR = re.compile(r"^(Error: .*|Target settings are not consistent.*|CMake Error.*)$")


@dataclass(frozen=True)
class Step:
    done: int
    total: int
    text: str


def parse_step(line: str) -> Step | None:
    """ninja's `[12/345] Building C object ...` (ESP-IDF and PlatformIO's CMake builds both print it)."""
    m = _STEP.match(line)
    return Step(int(m.group(1)), int(m.group(2)), m.group(3)) if m else None


def first_error(lines: list[str]) -> str | None:
    """The first compiler error as `file:line: message`, else the first tool error line."""
    for line in lines:
        if m := _ERROR.match(line.strip()):
            return f"{m.group('file')}:{m.group('line')}: {m.group('msg')}"
    for line in lines:
        if m := _TOOL_ERROR.match(line.strip()):
            return m.group(1)
    return None


class BuildLog:
    """The full (already redacted) output of one build, saved under build/<board>/log/."""

    def __init__(self, build_dir: Path, tool: str):
        folder = build_dir / "log"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"build-{time.strftime('%Y%m%d-%H%M%S')}-{tool}.log"
        self._fh = self.path.open("w", encoding="utf-8")
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)
        self._fh.write(line + "\n")

    def close(self) -> None:
        self._fh.close()


def run_logged(argv: list[str], build_dir: Path, tool: str, board: str, on_line, env=None) -> None:
    """Stream a build tool's output into the log and `on_line`; a failure names the first error and the log."""
    from rtflash import proc
    from rtflash.errors import ToolFailed

    log = BuildLog(build_dir, tool)
    try:
        for line in proc.stream(argv, env=env):
            log.add(line)
            on_line(line)
    except ToolFailed:
        error = first_error(log.lines) or f"{tool} failed"
        raise ToolFailed(f"build of {board} failed: {error} (full log: {log.path})") from None
    finally:
        log.close()
