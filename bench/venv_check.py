"""The benches need rtflash installed (the project's venv); without it, say so in one line, not a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def require_rtflash() -> None:
    """Exit with the command that works when this Python cannot import rtflash."""
    try:
        import rtflash  # noqa: F401
    except ImportError:
        script = Path(sys.argv[0]).name
        sys.exit(f"{script}: rtflash is not installed for {sys.executable}; run the benches with the project's "
                 f"venv: {REPO / '.venv' / 'bin' / 'python'} bench/{script} (set it up with python3 -m venv .venv "
                 "&& .venv/bin/pip install -e '.[test]')")
