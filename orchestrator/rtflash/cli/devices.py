"""Device plumbing shared by the commands that write devices (flash, erase, provision, run): flash
options from rtflash.toml, port resolution (asking on a terminal), one result line per device.
One floor below cli/flash and cli/provision*, so those never import each other."""

from __future__ import annotations

import json
import sys

import click

from rtflash.cli import App


def flash_options_from(app: App, baud: int | None = None, before: str = "default-reset",
                       after: str = "hard-reset", **kw):
    from rtflash.flash import FlashOptions

    return FlashOptions(baud=baud or app.settings.baud, before=before, after=after, **kw)


def _ask(candidates):
    """--port auto with several boards on a terminal: let the user pick one."""
    from rtflash import console

    for i, p in enumerate(candidates, 1):
        console.info(f"  {i}. {p.device}  {p.usb_id()}  {p.bridge}  {p.description}")
    choice = click.prompt("which port", type=click.IntRange(1, len(candidates)), err=True)
    return candidates[choice - 1]


def resolve_ports(app: App, board, ports: tuple[str, ...]) -> list[str]:
    from rtflash.ports import resolve

    wanted = ports or (app.settings.port,)
    ask = _ask if sys.stdin.isatty() else None
    return [resolve(p, board, ask) for p in wanted]


def report(app: App, results, as_json: bool) -> None:
    """One line (or one JSON object) per device; exit 1 if any failed."""
    from rtflash import console
    from rtflash.redact import redact

    for r in results:
        if as_json:
            sys.stdout.write(redact(json.dumps(r.to_dict())) + "\n")
            continue
        for w in r.warnings:
            console.warn(f"{r.port}: {w}")
        if r.ok:
            console.console().print(f"[green]ok[/]   {r.port}: ", end="", highlight=False)
            console.info(str(r))
        else:
            console.error(r.error)
    sys.stdout.flush()
    if not all(r.ok for r in results):
        raise click.exceptions.Exit(1)
