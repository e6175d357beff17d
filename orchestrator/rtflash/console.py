"""Two streams, as git and pip use them: a command's results go to stdout (`result`, `out_console`,
`emit_json`), so `rtflash doctor | less` shows the report; progress, warnings and errors go to stderr
(`info`, `warn`, `error`, `console`). Imported lazily by the CLI."""

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
    """A Console on stdout, for tables and reports that are the command's data (one line per row)."""
    from rich.console import Console

    return Console(highlight=False, **_plain())


def emit_json(data: Any) -> None:
    """Print one JSON document to stdout, secrets redacted."""
    sys.stdout.write(redact(json.dumps(data, indent=2, sort_keys=False)) + "\n")
    sys.stdout.flush()


def result(text: str = "", markup: bool = False, end: str = "\n") -> None:
    """One line of a command's result (the report, the table, the list) on stdout, secrets redacted.

    With `markup`, `text` may carry rich styles ([green]ok[/]); the caller escapes what it interpolates."""
    text = redact(text)
    out_console().print(text if markup else _escape(text), end=end, soft_wrap=True)


def error(message: str) -> None:
    console().print(f"[bold red]error:[/] {_escape(redact(message))}")


def warn(message: str) -> None:
    console().print(f"[yellow]warning:[/] {_escape(redact(message))}")


def info(message: str) -> None:
    console().print(_escape(redact(message)))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
