"""`rtflash deps`: show, check or fetch the firmware's pinned third-party code (firmware-src/deps.toml)."""

from __future__ import annotations

from pathlib import Path

import click

from rtflash.cli import App, json_errors, pass_app


@click.command()
@click.option("--fetch", "do_fetch", is_flag=True, help="Fetch every git dependency at its pinned commit into the cache.")
@click.option("--check", "do_check", is_flag=True, help="Exit 1 unless every dependency is present at its pin.")
@click.option("--target", type=click.Choice(["esp32s3", "linux"]), default=None,
              help="Only the dependencies this IDF target needs (default: all).")
@click.option("--from", "offline_dirs", multiple=True, metavar="DIR",
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Local copies (DIR/<name>) to fetch from instead of the network; repeatable.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Cache directory (default: $RTFLASH_DEPS_CACHE or ~/.cache/rtflash/deps).")
@click.option("--json", "as_json", is_flag=True, help="Print the statuses as JSON on stdout.")
@pass_app
@json_errors
def deps(app: App, do_fetch: bool, do_check: bool, target: str | None, offline_dirs: tuple[Path, ...],
         cache: Path | None, as_json: bool) -> None:
    """Show the firmware's pinned dependencies; --fetch them into the cache, --check they are there.

    Once fetched, `rtflash build --deps-dir <cache>` builds without network access.
    """
    from rtflash import console
    from rtflash import deps as core

    manifest = core.load_manifest()
    cache = cache or core.cache_dir()
    if do_fetch:
        statuses = core.fetch_all(manifest, cache, offline_dirs, target)
    else:
        statuses = core.check(manifest, cache, target)
    if as_json:
        console.emit_json({"manifest": str(manifest.path), "cache": str(cache),
                           "ok": all(s.ok for s in statuses), "deps": [s.to_dict() for s in statuses]})
    else:
        from rich.markup import escape

        styles = {"ok": "green", "managed": "cyan", "missing": "yellow", "mismatch": "red"}
        for s in statuses:
            console.result(f"[{styles[s.state]}]{s.state:<8}[/] [bold]{escape(s.name)}[/] ({s.kind}): "
                           + escape(s.detail), markup=True)
        console.result(f"manifest {manifest.path}; cache {cache}")
    if (do_check or do_fetch) and not all(s.ok for s in statuses):
        raise click.exceptions.Exit(1)
