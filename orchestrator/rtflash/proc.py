"""The one place rtflash starts subprocesses.

Why one place: every argv is logged with secrets redacted, a missing program becomes `ToolNotFound`
with the fix, a non-zero exit becomes `ToolFailed` carrying the tail of the output, and output lines
are streamed so callers can show progress without buffering a whole build log.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtflash.errors import ToolFailed, ToolNotFound
from rtflash.redact import redact

log = logging.getLogger("rtflash.proc")

INSTALL_HINTS = {
    "idf.py": "install ESP-IDF v5.4+ and run `. $IDF_PATH/export.sh`, or use --backend pio",
    "pio": "pip install platformio",
    "git": "apt-get install git",
    "cmake": "apt-get install cmake",
    "addr2line": "apt-get install binutils",
}


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    output: str


def shown(argv: Sequence[str]) -> str:
    """The argv as a shell line, secrets masked: the only form rtflash ever logs or prints."""
    return redact(shlex.join(str(a) for a in argv))


def require(program: str, path: str | None = None, hint: str = "") -> str:
    """Full path of `program`, or ToolNotFound saying how to install it."""
    found = shutil.which(program, path=path)
    if not found:
        fix = hint or INSTALL_HINTS.get(program, f"install {program} and put it on PATH")
        raise ToolNotFound(f"{program} not found on PATH; {fix}")
    return found


def _not_found(argv: Sequence[str]) -> ToolNotFound:
    program = Path(str(argv[0])).name
    return ToolNotFound(f"{argv[0]} not found; {INSTALL_HINTS.get(program, f'install {program}')}")


def _env(extra: Mapping[str, str | None] | None, unset: Sequence[str] = ()) -> dict[str, str] | None:
    """os.environ with `extra` over it, without the `unset` names; a None value in `extra` also removes
    that variable (e.g. one a build must not see)."""
    if extra is None and not unset:
        return None
    merged = {**os.environ, **(extra or {})}
    return {k: v for k, v in merged.items() if v is not None and k not in unset}


def run(argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None,
        check: bool = True, timeout: float | None = None, input: str | None = None) -> Result:
    """Run to completion, capturing stdout+stderr together; ToolFailed on a non-zero exit if `check`."""
    log.debug("run: %s", shown(argv))
    try:
        done = subprocess.run([str(a) for a in argv], cwd=cwd, env=_env(env), input=input, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                              errors="replace")
    except FileNotFoundError:
        raise _not_found(argv) from None
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{shown(argv[:2])} timed out after {timeout:.0f} s") from None
    result = Result(tuple(str(a) for a in argv), done.returncode, redact(done.stdout or ""))
    if check and done.returncode != 0:
        raise ToolFailed(failure_message(result))
    return result


def stream(argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """Yield output lines (stdout+stderr, redacted) as they come; ToolFailed at the end on a non-zero exit."""
    log.debug("stream: %s", shown(argv))
    try:
        proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=_env(env), text=True, errors="replace",
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
    except FileNotFoundError:
        raise _not_found(argv) from None
    tail: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = redact(line.rstrip("\n"))
            tail = (tail + [line])[-20:]
            yield line
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if proc.returncode != 0:
        raise ToolFailed(failure_message(Result(tuple(map(str, argv)), proc.returncode, "\n".join(tail))))


def interactive(argv: Sequence[str], env: Mapping[str, str] | None = None, unset: Sequence[str] = ()) -> int:
    """Run with the terminal (stdin/stdout/stderr inherited), for programs people talk to; the exit code.
    `unset`: variables of this environment the program must not inherit (e.g. a key it must not hold)."""
    log.debug("interactive: %s", shown(argv))
    try:
        return subprocess.call([str(a) for a in argv], env=_env(env, unset))
    except FileNotFoundError:
        raise _not_found(argv) from None


def failure_message(result: Result) -> str:
    last = next((ln.strip() for ln in reversed(result.output.splitlines()) if ln.strip()), "")
    detail = f": {last}" if last else ""
    return f"{shown(result.argv[:3])} exited with status {result.returncode}{detail}"
