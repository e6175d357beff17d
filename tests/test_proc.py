"""The one subprocess door: typed errors, redacted echo and output, streamed lines."""

from __future__ import annotations

import sys

import pytest

from rtflash import proc, redact
from rtflash.errors import ToolFailed, ToolNotFound


def test_require_missing_program_names_fix():
    with pytest.raises(ToolNotFound, match="idf.py not found on PATH; install ESP-IDF"):
        proc.require("idf.py", path="/nonexistent")
    assert proc.require("sh").endswith("/sh")


def test_run_captures_and_redacts():
    redact.register("canary-secret-123")
    result = proc.run([sys.executable, "-c", "print('x canary-secret-123 y')"])
    assert result.returncode == 0 and result.output == f"x {redact.MASK} y\n"
    assert "canary" not in proc.shown(["tool", "--key", "canary-secret-123"])


def test_run_failure_is_typed_with_last_line():
    with pytest.raises(ToolFailed, match=r"exited with status 3: boom") as err:
        proc.run([sys.executable, "-c", "import sys; print('first'); print('boom'); sys.exit(3)"])
    assert "Traceback" not in str(err.value)
    assert proc.run([sys.executable, "-c", "raise SystemExit(2)"], check=False).returncode == 2


def test_missing_executable_in_run_and_stream():
    with pytest.raises(ToolNotFound):
        proc.run(["/nonexistent/tool"])
    with pytest.raises(ToolNotFound):
        list(proc.stream(["/nonexistent/tool"]))


def test_stream_yields_lines_then_raises():
    code = "import sys\nfor i in range(3): print(i, flush=True)\nsys.exit(1)"
    got = []
    with pytest.raises(ToolFailed, match="status 1: 2"):
        for line in proc.stream([sys.executable, "-c", code]):
            got.append(line)
    assert got == ["0", "1", "2"]


def test_timeout():
    with pytest.raises(ToolFailed, match="timed out"):
        proc.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.5)
