"""`rtflash render`: the board's configuration files, rendered from templates/."""

from __future__ import annotations

from pathlib import Path

import click

from rtflash.cli import App, board_option, json_errors, pass_app


@click.command()
@board_option()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Output directory (default: build/<board>/config).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON on stdout.")
@pass_app
@json_errors
def render(app: App, board_name: str | None, out: Path | None, as_json: bool) -> None:
    """Render sdkconfig.defaults, partitions.csv and platformio.ini for a board."""
    from rtflash import console
    from rtflash.render import config_dir, render_board

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
        console.result(f"{state:>9}  {_rel(path)}")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.command()
@board_option()
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON on stdout.")
@pass_app
@json_errors
def check(app: App, board_name: str | None, as_json: bool) -> None:
    """Check the board's rendered sdkconfig.defaults against Kconfig (ESP-IDF's when IDF_PATH is set)."""
    import os

    from rtflash import console, kconfig
    from rtflash.render import ensure_rendered
    from rtflash.resources import firmware_dir

    board = app.board(board_name)
    rendered = ensure_rendered(board, app.settings, app.project_dir)
    firmware = firmware_dir()
    idf = os.environ.get("IDF_PATH")
    if idf:
        from rtflash.deps import cache_dir

        deps_dir = Path(os.environ.get("RTFLASH_DEPS_DIR") or cache_dir())
        tree = kconfig.idf_tree(Path(idf), firmware, board.idf_target, rendered.out_dir.parent,
                                (deps_dir / "components",))
    else:
        tree = kconfig.firmware_tree(firmware)
    layers = [p for p in (firmware / "sdkconfig.defaults",) if p.is_file()]
    layers.append(rendered.out_dir / "sdkconfig.defaults")
    report = kconfig.check(layers, tree, board.idf_target)
    scope = f"ESP-IDF at {idf}" if idf else "firmware-src Kconfig only (no IDF_PATH)"
    if as_json:
        console.emit_json({
            "board": board.name, "ok": report.ok, "against": scope, "checked": report.checked,
            "problems": [{"kind": p.kind, "symbol": p.assignment.symbol, "where": p.assignment.where,
                          "detail": p.detail} for p in report.problems],
            "warnings": [{"kind": p.kind, "symbol": p.assignment.symbol, "where": p.assignment.where,
                          "detail": p.detail} for p in report.warnings],
            "unchecked": [f"CONFIG_{a.symbol}" for a in report.unchecked],
        })
    else:
        for warning in report.warnings:
            console.warn(str(warning))
        for problem in report.problems:
            console.result(f"problem: {problem}")
        console.result(f"{board.name}: {report.checked} assignments checked against {scope}, "
                     f"{len(report.problems)} problem(s)")
        if report.unchecked:
            console.warn(f"{len(report.unchecked)} assignments not checked (their Kconfig is ESP-IDF's; set "
                         "IDF_PATH to an ESP-IDF v5.4+ checkout to check them)")
    if not report.ok:
        raise click.exceptions.Exit(1)
