"""`rtflash boards` and `rtflash boards show NAME`."""

from __future__ import annotations

import click

from rtflash.cli import App, complete_board, json_errors, pass_app


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the boards as JSON on stdout.")
@pass_app
@click.pass_context
@json_errors
def boards(ctx: click.Context, app: App, as_json: bool) -> None:
    """List the boards rtflash knows (shipped ones and your --boards-dir)."""
    if ctx.invoked_subcommand:
        return
    from rtflash import console

    all_boards, broken = app.catalog.load_all()
    if as_json:
        console.emit_json([b.to_dict() for b in all_boards]
                          + [{"name": None, "error": str(e)} for e in broken])
        _fail_on(broken)
        return
    from rich.table import Table

    table = Table(title="Boards", title_justify="left")
    for column in ("name", "chip", "flash", "PSRAM", "audio", "console"):
        table.add_column(column)
    for b in all_boards:
        table.add_row(b.name, b.chip, b.flash_size or "-", b.psram, b.audio.summary(), b.console or "-")
    console.out_console().print(table)
    _warn(all_boards)
    _fail_on(broken)


def _fail_on(broken) -> None:
    """Each broken board file on its own error line, then exit 1 (the good boards are still listed)."""
    from rtflash import console

    for exc in broken:
        console.error(str(exc))
    if broken:
        raise click.exceptions.Exit(1)


@boards.command("show")
@click.argument("name", shell_complete=complete_board)
@click.option("--json", "as_json", is_flag=True, help="Print the board as JSON on stdout.")
@pass_app
@json_errors
def show(app: App, name: str, as_json: bool) -> None:
    """Show one board's full definition."""
    from rtflash import console

    board = app.catalog.get(name)
    if as_json:
        console.emit_json(board.to_dict())
        return
    from rich.table import Table

    table = Table(title=f"{board.name}: {board.description}", title_justify="left", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in _flatten(board.to_dict()):
        table.add_row(key, value)
    for note in board.notes:
        table.add_row("note", note)
    console.out_console().print(table)
    _warn([board])


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        if key in ("warnings", "notes"):
            continue
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        elif value is not None and value != -1:
            shown = f"GPIO{value}" if _is_pin(key) else str(value)
            yield f"{prefix}{key}", shown


def _is_pin(key: str) -> bool:
    return key in ("mclk", "bclk", "ws", "data", "amp_enable", "i2c_sda", "i2c_scl")


def _warn(boards_) -> None:
    from rtflash import console

    for b in boards_:
        for w in b.warnings:
            console.warn(w)
