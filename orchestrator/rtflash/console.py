"""One rich Console on stderr for people; data (--json) goes to stdout. Imported lazily by the CLI."""

from __future__ import annotations

import json
import os
import sys
from functools import cache
from typing import Any

from rtflash.redact import redact


def _plain() -> dict:
    """NO_COLOR (no-color.org) means no styling at all, bold included, even when FORCE_COLOR is set."""
    return {"color_system": None} if os.environ.get("NO_COLOR") else {}


@cache
def console():
    """The stderr Console: one line per message (soft wrap), no colour on a pipe or with NO_COLOR."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True, **_plain())


@cache
def out_console():
    """A Console on stdout, for tables that are the command's data."""
    from rich.console import Console

    return Console(highlight=False, **_plain())


def emit_json(data: Any) -> None:
    """Print one JSON document to stdout, secrets redacted."""
    sys.stdout.write(redact(json.dumps(data, indent=2, sort_keys=False)) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    console().print(f"[bold red]error:[/] {_escape(redact(message))}")


def warn(message: str) -> None:
    console().print(f"[yellow]warning:[/] {_escape(redact(message))}")


def info(message: str) -> None:
    console().print(_escape(redact(message)))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
