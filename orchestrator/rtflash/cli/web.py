"""`rtflash web`: serve dist/ (the ESP Web Tools install page) on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import click

from rtflash.cli import App, pass_app


@click.command()
@click.option("--dist", type=click.Path(file_okay=False, path_type=Path), default=Path("dist"), show_default=True,
              help="The directory `rtflash ci --web` wrote.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port on 127.0.0.1 (0: any free one).")
@click.option("--page-only", is_flag=True,
              help="Write dist/index.html from the builds in dist/ (e.g. CI jobs' artifacts merged) and stop.")
@click.option("--esp-web-tools", "web_tools", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --page-only: the pinned esp-web-tools npm tarball (default: $RTFLASH_ESP_WEB_TOOLS, "
                   ".cache/npm/).")
@pass_app
def web(app: App, dist: Path, port: int, page_only: bool, web_tools: Path | None) -> None:
    """Serve the install page on 127.0.0.1 until Ctrl-C (Web Serial works on localhost without HTTPS)."""
    from rtflash import console
    from rtflash.web import find_tarball, make_server, write_page

    dist = dist if dist.is_absolute() else app.project_dir / dist
    if page_only:
        write_page(dist, app.catalog, find_tarball(app.project_dir, web_tools))
        console.info(f"install page: {dist / 'index.html'}")
        return
    server = make_server(dist, port)
    host, bound = server.server_address[:2]
    console.result(f"http://{host}:{bound}/")
    console.info(f"serving {dist} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
