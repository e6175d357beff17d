"""`rtflash ci` and `rtflash doctor`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rtflash.cli import App, firmware_option, json_errors, pass_app
from rtflash.cli.build import deps_dir_option


@click.command()
@click.option("--boards", "spec", default="all", show_default=True, metavar="all|a,b",
              help="Boards to build: all, or a comma-separated list.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("dist"), show_default=True,
              help="Where dist/<board>/, index.json and summary.md go.")
@click.option("--matrix", "as_matrix", is_flag=True, help="Print the GitHub Actions matrix JSON and stop.")
@click.option("--backend", type=click.Choice(["auto", "idf", "pio"]), default=None,
              help="Build backend (default: rtflash.toml, else auto).")
@click.option("--web", is_flag=True, help="Also write dist/index.html: an ESP Web Tools install page (rtflash web).")
@click.option("--esp-web-tools", "web_tools", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The pinned esp-web-tools npm tarball (default: $RTFLASH_ESP_WEB_TOOLS, .cache/npm/).")
@deps_dir_option
@firmware_option()
@pass_app
def ci(app: App, spec: str, out: Path, as_matrix: bool, backend: str | None, web: bool,
       web_tools: Path | None, deps_dir: Path | None, firmware_dir: Path | None,
       bake_secrets: bool) -> None:
    """Build boards secret-free into dist/ (CI); --matrix prints the job matrix; --web an install page."""
    from rtflash import ci as ci_core
    from rtflash import console

    _refuse_secrets(app, firmware_dir, bake_secrets, deps_dir)
    boards = ci_core.select_boards(app.catalog, spec)
    if as_matrix:
        click.echo(json.dumps(ci_core.matrix(boards), separators=(",", ":")))
        return
    from rtflash.artifacts import collect_dist
    from rtflash.builder import build_board

    out = out if out.is_absolute() else app.project_dir / out
    chosen = backend or app.settings.backend
    tarball = None
    if web:  # checked before a long build, not after it
        from rtflash import web as web_page

        tarball = web_page.find_tarball(app.project_dir, web_tools)
        web_page.verify_tarball(tarball)

    def build(board):
        console.info(f"building {board.name} ({board.idf_target}) ...")
        return build_board(board, app.settings, app.project_dir, backend=chosen, deps_dir=deps_dir,
                           firmware=app.firmware)

    def shown(result) -> None:
        if result.ok:
            console.console().print(f"[green]ok[/]      {result.board}  {result.seconds:.1f} s  {len(result.files)} files")
        else:
            console.console().print(f"[red]failed[/]  {result.board}  ", end="")
            console.info(result.error)

    report = ci_core.run_ci(boards, out, build, collect_dist, on_result=shown)
    console.info(f"{sum(r.ok for r in report.results)} of {len(report.results)} boards built; "
                 f"see {out / 'index.json'}")
    if tarball is not None:
        web_page.write_page(out, app.catalog, tarball)
        console.info(f"install page: {out / 'index.html'} (look at it with `rtflash web --dist {out}`)")
    if not report.ok:
        raise click.exceptions.Exit(1)


def _refuse_secrets(app: App, firmware_dir: Path | None, bake_secrets: bool, deps_dir: Path | None = None) -> None:
    """ci publishes artifacts: never one with a secret in it (--bake-secrets, or the SDK that needs it)."""
    from rtflash.errors import ConfigError

    if bake_secrets:
        raise ConfigError("rtflash ci never uses --bake-secrets: dist/ is published, and an artifact must never hold "
                          "a secret; build such a binary locally with `rtflash build --bake-secrets`")
    firmware = app.use_firmware(firmware_dir, deps_dir)
    if firmware is not None and firmware.is_upstream:
        raise ConfigError(f"rtflash ci cannot build {firmware.source}: the OpenAI Realtime SDK compiles WIFI_SSID, "
                          "WIFI_PASSWORD and OPENAI_API_KEY into the binary, and a dist/ artifact must never hold them; "
                          "build rtflash's own firmware in CI (credentials go to NVS with `rtflash provision`)")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON on stdout.")
@pass_app
@json_errors
def doctor(app: App, as_json: bool) -> None:
    """Check ESP-IDF, toolchains, PlatformIO, packages, serial ports, deps and credentials."""
    from rtflash import console
    from rtflash.doctor import FAIL, Check, run_checks

    good, broken = app.catalog.load_all()  # a broken board file is a finding, not the end of the report
    chips = {b.chip for b in good}
    by_chip = {chip: sorted(b.name for b in good if b.chip == chip) for chip in chips}
    checks = run_checks(chips, extra=_project_checks(app), boards=by_chip)
    checks += [Check("board file", FAIL, str(e), "fix the file (see `rtflash boards`)") for e in broken]
    if as_json:
        console.emit_json([c.to_dict() for c in checks])
    else:
        styles = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            console.result(f"[{styles[c.status]}]{c.status:<4}[/] [bold]{_esc(c.name)}[/]: "
                           + _esc(c.detail + (f"  -> {c.fix}" if c.fix else "")), markup=True)
    if any(c.status == FAIL for c in checks):
        raise click.exceptions.Exit(1)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _project_checks(app: App) -> list:
    """Checks that need the project: firmware deps and credentials (each module says its own status)."""
    extra = []
    try:
        from rtflash.deps import doctor_check as deps_check

        extra.append(lambda: deps_check())
    except ImportError:
        pass
    try:
        from rtflash.credentials import doctor_check as cred_check

        extra.append(lambda: cred_check(app.project_dir))
    except ImportError:
        pass
    return extra
