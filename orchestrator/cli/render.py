"""`rtflash render`: the board's configuration files, rendered from templates/."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli import App, board_option, pass_app


@click.command()
@board_option()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Output directory (default: build/<board>/config).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON on stdout.")
@pass_app
def render(app: App, board_name: str | None, out: Path | None, as_json: bool) -> None:
    """Render sdkconfig.defaults, partitions.csv and platformio.ini for a board."""
    from orchestrator import console
    from orchestrator.render import config_dir, render_board

    board = app.board(board_name)
    for w in board.warnings:
        console.warn(w)
    result = render_board(board, app.settings, out or config_dir(app.project_dir, board.name))
    if as_json:
        console.emit_json({
            "board": board.name, "out_dir": str(result.out_dir), "seconds": round(result.seconds, 4),
            "written": [str(p) for p in result.written], "unchanged": [str(p) for p in result.unchanged],
        })
        return
    for path in result.files:
        state = "written" if path in result.written else "unchanged"
        console.info(f"{state:>9}  {_rel(path)}")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
