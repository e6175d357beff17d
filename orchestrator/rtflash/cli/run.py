"""`rtflash run`: render, build, flash and monitor in one, each stage shown, stopping at the first failure.

It only composes the commands' own building blocks (render.ensure_rendered, cli.build.run_build,
cli.flash.load_images/run_flash, the monitor command), so each stage behaves exactly as its command.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from rtflash.cli import App, board_option, firmware_option, pass_app
from rtflash.cli.build import deps_dir_option


class Stages:
    """Numbered stage lines: `[2/4] build sonatino` ... `ok (12.3 s)`."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.start = 0.0

    def begin(self, name: str, detail: str = "") -> None:
        from rtflash import console

        n = self.names.index(name) + 1
        self.start = time.perf_counter()
        console.console().print(f"[bold cyan][{n}/{len(self.names)}] {name}[/] {detail}", highlight=False)

    def done(self, detail: str = "") -> None:
        from rtflash import console

        took = time.perf_counter() - self.start
        console.console().print(f"      [green]ok[/] {detail} ({took:.1f} s)".rstrip(), highlight=False)


@click.command()
@board_option()
@click.option("--port", "-p", "ports", multiple=True, metavar="PORT",
              help="Serial port or pyserial URL (several flash in parallel; the first is monitored). Default: auto.")
@click.option("--backend", type=click.Choice(["auto", "idf", "pio"]), default=None, help="Build tool.")
@click.option("--clean", is_flag=True, help="Remove the previous build output first.")
@deps_dir_option
@click.option("--baud", type=click.IntRange(9600, 5_000_000), default=None, help="Baud rate for flashing.")
@click.option("--full", is_flag=True, help="Write every sector (no fast reflash).")
@click.option("--no-credentials", is_flag=True, help="Do not write the Wi-Fi/API credentials partition.")
@click.option("--no-monitor", is_flag=True, help="Stop after flashing.")
@click.option("--timestamps", is_flag=True, help="Monitor: host timestamps.")
@click.option("--filter", "filters", multiple=True, metavar="TAG:LEVEL", help="Monitor: tag filters.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Monitor: also save the plain text to FILE.")
@click.option("--no-reconnect", is_flag=True, help="Monitor: exit when the port goes away.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Monitor: stop after SECONDS.")
@firmware_option()
@click.pass_context
@pass_app
def run(app: App, ctx: click.Context, board_name, ports, backend, clean, deps_dir, baud, full, no_credentials, no_monitor,
        timestamps, filters, log_path, no_reconnect, timeout, firmware_dir=None, bake_secrets=False) -> None:
    """Render, build, flash and monitor a board in one; Ctrl-T F in the monitor rebuilds and reflashes."""
    from rtflash import console
    from rtflash.cli.build import firmware_notices

    board = app.board(board_name)
    for w in board.warnings:
        console.warn(w)
    if app.use_firmware(firmware_dir, deps_dir) is not None:
        firmware_notices(app, board, bake_secrets)
        if app.firmware.is_upstream and not bake_secrets:
            from rtflash.external import refuse_without_bake

            refuse_without_bake(app.firmware)
        no_credentials = True  # a --firmware project does not read rtflash's NVS credentials
    if board.is_linux:
        names = ["render", "build", "exec"]
    else:
        names = ["render", "build", "flash"] + ([] if no_monitor else ["monitor"])
    stages = Stages(names)
    _render(app, board, stages)
    _build(app, board, stages, backend, clean, deps_dir, bake_secrets)
    if board.is_linux:
        from rtflash.cli.build import exec_

        stages.begin("exec", "build/linux (Ctrl-C stops it)")
        ctx.invoke(exec_, board_name=board.name, args=())
        return
    port_list = _flash(app, board, stages, ports, baud, full, no_credentials)
    if no_monitor:
        return
    from rtflash.cli.monitor import monitor

    stages.begin("monitor", port_list[0])
    ctx.invoke(monitor, board_name=board.name, port=port_list[0], timestamps=timestamps, filters=filters,
               log_path=log_path, no_reconnect=no_reconnect, timeout=timeout)


def _render(app: App, board, stages: Stages) -> None:
    from rtflash.render import ensure_rendered

    stages.begin("render", board.name)
    if app.firmware is not None:  # --firmware DIR: the board layer over DIR's own defaults
        from rtflash.render import render_external

        result = render_external(board, app.settings, app.build_dir(board.name) / "config", app.firmware)[0]
    else:
        result = ensure_rendered(board, app.settings, app.project_dir)
    stages.done(f"{len(result.written)} file(s) changed" if result.written else "up to date")


def _build(app: App, board, stages: Stages, backend, clean, deps_dir=None, bake_secrets: bool = False) -> None:
    from rtflash.artifacts import check_fits
    from rtflash.cli.build import run_build

    stages.begin("build", board.name)
    artifacts = run_build(app, board, backend, clean, deps_dir=deps_dir, bake_secrets=bake_secrets)
    if not board.is_linux:
        check_fits(artifacts, app.build_dir(board.name) / "config" / "partitions.csv")
    size = sum(r.path.stat().st_size for r in artifacts.regions)
    stages.done(f"{size} bytes of images" if size else str(artifacts.elf))


def _flash(app: App, board, stages: Stages, ports, baud, full, no_credentials) -> list[str]:
    from rtflash.cli.flash import flash_options_from, load_images, report, resolve_ports, run_flash

    images = load_images(app, board, force=False, with_credentials=not no_credentials)
    port_list = resolve_ports(app, board, ports)
    stages.begin("flash", ", ".join(port_list))
    options = flash_options_from(app, baud, full=full)
    report(app, run_flash(app, board, port_list, images, options), as_json=False)
    return port_list
