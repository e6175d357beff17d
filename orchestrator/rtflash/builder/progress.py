"""Reading build tool output: ninja's `[N/M]` progress, the first compiler error, the saved log."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

_STEP = re.compile(r"^\[(\d+)/(\d+)\]\s+(.*)$")
_ERROR = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::(?P<col>\d+))?:\s+(?:fatal )?error:\s+(?P<msg>.*)$")
# Lines that are the error themselves: tool errors (idf.py, PlatformIO's builder), ninja, the linker.
_TOOL_ERROR = re.compile(r"^(Error: .*|Target settings are not consistent.*|AssertionError: .*|"
                         r"ninja: error: .*|.*undefined reference to .*|.*HTTPClientError.*)$")
# `CMake Error at FILE:LINE (message):` heads an indented message: the message is the error.
_CMAKE_ERROR = re.compile(r"^CMake Error(?: at (?P<where>\S+:\d+)(?: \((?P<cmd>\w+)\))?)?:\s*(?P<rest>.*)$")


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
    """The first compiler error as `file:line: message`, else the first CMake error's message (the
    indented text under its header, not the header), else the first tool error line."""
    for line in lines:
        if m := _ERROR.match(line.strip()):
            return f"{m.group('file')}:{m.group('line')}: {m.group('msg')}"
    for index, line in enumerate(lines):
        if m := _CMAKE_ERROR.match(line.strip()):
            return _cmake_message(m, lines[index + 1:])
    for line in lines:
        if m := _TOOL_ERROR.match(line.strip()):
            return m.group(1).removeprefix("ninja: error: ")
    return None


def _cmake_message(header: re.Match, following: list[str]) -> str:
    """`CMake Error at X:N (message):` + indented lines -> `X:N: the message` (first paragraph, joined)."""
    parts = [header.group("rest")] if header.group("rest") else []
    for line in following:
        if not line.strip():
            if parts:
                break
            continue
        if not line.startswith((" ", "\t")):
            break
        parts.append(line.strip())
    message = " ".join(parts) or "CMake failed"
    where = header.group("where")
    return f"CMake: {where}: {message}" if where else f"CMake: {message}"


class BuildLog:
    """The full (already redacted) output of one build, saved under build/<board>/log/."""

    def __init__(self, build_dir: Path, tool: str):
        folder = build_dir / "log"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime('%Y%m%d-%H%M%S')
        for n in range(1, 1000):  # two builds in the same second get their own files
            self.path = folder / f"build-{stamp}-{tool}{'' if n == 1 else f'-{n}'}.log"
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"{folder}: too many build logs for {stamp}; remove old ones")
        self._fh = os.fdopen(fd, "w", encoding="utf-8")
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


def ccache_available() -> bool:
    """ccache on PATH and not turned off by $RTFLASH_NO_CCACHE (shared by both backends)."""
    import os
    import shutil

    return shutil.which("ccache") is not None and not os.environ.get("RTFLASH_NO_CCACHE")
