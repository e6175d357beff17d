"""`rtflash render`: the board's configuration files, rendered from templates/."""

from __future__ import annotations

from pathlib import Path

import click

from rtflash.cli import App, board_option, firmware_option, json_errors, pass_app


@click.command()
@board_option()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Output directory (default: build/<board>/config).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON on stdout.")
@firmware_option(bake=False)
@pass_app
@json_errors
def render(app: App, board_name: str | None, out: Path | None, as_json: bool, firmware_dir: Path | None) -> None:
    """Render sdkconfig.defaults, partitions.csv and platformio.ini for a board (--firmware DIR: the board
    layer over DIR's own sdkconfig.defaults)."""
    from rtflash import console
    from rtflash.render import config_dir, render_board, render_external

    board = app.board(board_name)
    for w in board.warnings:
        console.warn(w)
    firmware = app.use_firmware(firmware_dir)
    if firmware is not None:
        result, note = render_external(board, app.settings, out or app.build_dir(board.name) / "config", firmware)
        if not as_json and not board.is_linux:
            console.info(note)
    else:
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
@firmware_option(bake=False)
@pass_app
@json_errors
def check(app: App, board_name: str | None, as_json: bool, firmware_dir: Path | None) -> None:
    """Check the board's rendered sdkconfig.defaults against Kconfig (ESP-IDF's when IDF_PATH is set)."""
    import os

    from rtflash import console, kconfig
    from rtflash.render import ensure_rendered, render_external
    from rtflash.resources import firmware_dir as rtflash_firmware

    board = app.board(board_name)
    external = app.use_firmware(firmware_dir)
    idf = os.environ.get("IDF_PATH")
    inapplicable: list = []
    if external is not None:
        rendered, _ = render_external(board, app.settings, app.build_dir(board.name) / "config", external)
        report, scope = _check_external(external, board, rendered.out_dir, idf)
        inapplicable = [p for p in report.problems if board.is_linux and p.kind == "unknown"
                        and p.assignment.file == external.source / "sdkconfig.defaults"]
        report.problems[:] = [p for p in report.problems if p not in inapplicable]
        _show_check(board, report, scope, as_json, inapplicable)
        return
    rendered = ensure_rendered(board, app.settings, app.project_dir)
    firmware = rtflash_firmware()
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
    _show_check(board, report, scope, as_json)


def _check_external(external, board, config: Path, idf: str | None):
    """--firmware DIR: DIR's own sdkconfig.defaults then rtflash's board layer, against ESP-IDF's Kconfig
    of DIR's build (its configured component set, else ESP-IDF's expansion over DIR's component dirs)."""
    from rtflash import kconfig
    from rtflash.errors import ConfigError
    from rtflash.external import component_dirs

    if not idf:
        raise ConfigError(f"checking --firmware {external.source} needs ESP-IDF's Kconfig: set IDF_PATH "
                          "(`. $IDF_PATH/export.sh`)")
    from rtflash import components as comp

    idf_path = Path(idf)
    found = comp.from_project_description(config.parent)  # DIR's configured build: the exact set
    if found is None:
        dirs, names = component_dirs(external, board.idf_target, idf_path)
        found = comp.expand(idf_path, board.idf_target, [d for d in (external.source / "main", external.source /
                                                                     "components", *dirs) if d.is_dir()], names)
    tree = kconfig.tree_of(idf_path, found, board.idf_target)
    layers = [p for p in (external.source / "sdkconfig.defaults", config / "sdkconfig.defaults") if p.is_file()]
    return kconfig.check(layers, tree, board.idf_target), f"ESP-IDF at {idf} ({external.name}'s build)"


def _show_check(board, report, scope: str, as_json: bool, inapplicable: list | None = None) -> None:
    from rtflash import console

    inapplicable = inapplicable or []
    if as_json:
        console.emit_json({
            "board": board.name, "ok": report.ok, "against": scope, "checked": report.checked,
            "problems": [{"kind": p.kind, "symbol": p.assignment.symbol, "where": p.assignment.where,
                          "detail": p.detail} for p in report.problems],
            "warnings": [{"kind": p.kind, "symbol": p.assignment.symbol, "where": p.assignment.where,
                          "detail": p.detail} for p in report.warnings],
            "unchecked": [f"CONFIG_{a.symbol}" for a in report.unchecked],
            "not_in_target": [{"symbol": p.assignment.symbol, "where": p.assignment.where} for p in inapplicable],
        })
    else:
        for warning in report.warnings:
            console.warn(str(warning))
        for problem in report.problems:
            console.result(f"problem: {problem}")
        for p in inapplicable:
            console.warn(f"{p.assignment.where}: CONFIG_{p.assignment.symbol}: not in {board.name}'s build (the "
                         "project's own setting for other targets; ESP-IDF ignores it here)")
        console.result(f"{board.name}: {report.checked} assignments checked against {scope}, "
                     f"{len(report.problems)} problem(s)")
        if report.unchecked:
            console.warn(f"{len(report.unchecked)} assignments not checked (their Kconfig is ESP-IDF's; set "
                         "IDF_PATH to an ESP-IDF v5.4+ checkout to check them)")
    if not report.ok:
        raise click.exceptions.Exit(1)
