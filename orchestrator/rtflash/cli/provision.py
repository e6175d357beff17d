"""`rtflash provision`: write the credentials (NVS partition) to a device, nothing else."""

from __future__ import annotations

from pathlib import Path

import click

from rtflash.cli import App, board_option, pass_app


def credential_options(f):
    for opt, name, text in (("--wifi-ssid", "wifi_ssid", "Wi-Fi network name."),
                            ("--wifi-password", "wifi_password", "Wi-Fi password."),
                            ("--api-key", "openai_api_key", "OpenAI API key.")):
        f = click.option(opt, name, default=None, help=text)(f)
    return f


def nvs_image(app: App, board, options: dict) -> tuple[bytes, object]:
    """Resolve credentials and build the nvs partition image in memory; returns (image, partition)."""
    from rtflash import credentials, nvs
    from rtflash.cli.secrets import interactive_prompt
    from rtflash.errors import ConfigError
    from rtflash.partitions import read_csv
    from rtflash.render import ensure_rendered

    rendered = ensure_rendered(board, app.settings, app.project_dir)
    layout = read_csv(rendered.out_dir / "partitions.csv")
    part = layout.find("nvs")
    if part is None:
        raise ConfigError(f"{rendered.out_dir / 'partitions.csv'} has no 'nvs' partition; add one")
    found = credentials.resolve(options, app.project_dir, prompt=interactive_prompt())
    return nvs.image(nvs.entries(found, app.settings), part.size), part


def save_nvs(app: App, board, options: dict, out: Path):
    """nvs_image saved to `out` (0600) for flashing by other means; never inside build/ or dist/."""
    from rtflash.errors import ConfigError
    from rtflash.files import write_atomic

    target = out.resolve()
    for shared in ("build", "dist"):
        if target.is_relative_to((app.project_dir / shared).resolve()):
            raise ConfigError(f"--out {out}: credentials stay out of {shared}/ (build output is shared and "
                              f"uploaded); pick a path outside it, e.g. ~/nvs-{board.name}.bin")
    data, part = nvs_image(app, board, options)
    write_atomic(target, data, mode=0o600)
    return target, part


@click.command()
@board_option()
@click.option("--port", "-p", "ports", multiple=True, metavar="PORT",
              help="Serial port or pyserial URL; several allowed (default: rtflash.toml, else auto).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Save the partition image (0600) to FILE instead of writing a device.")
@credential_options
@pass_app
def provision(app: App, board_name, ports, out, wifi_ssid, wifi_password, openai_api_key) -> None:
    """Write Wi-Fi and API credentials to the device's NVS partition (no rebuild)."""
    from rtflash import console

    board = app.board(board_name)
    if board.is_linux:
        console.info("the linux board has no NVS partition: `rtflash exec` passes it the API key (from the "
                     "environment, .env or the secrets file) when it runs; nothing to provision")
        return
    options = {"wifi_ssid": wifi_ssid, "wifi_password": wifi_password, "openai_api_key": openai_api_key}
    if out is not None:
        path, part = save_nvs(app, board, options, out)
        console.info(f"credentials partition: {path} ({part.size // 1024} KiB at {part.offset:#x}, mode 0600)")
        console.info(f"write it with: python -m esptool --chip {board.chip} --port PORT write-flash "
                     f"{part.offset:#x} {path}")
        return
    from rtflash import flash
    from rtflash.cli.flash import flash_options_from, report, resolve_ports

    data, part = nvs_image(app, board, options)  # in memory: no copy of the secrets on disk
    images = [flash.Image("nvs", part.offset, data, cache=False)]
    report(app, flash.flash_many(resolve_ports(app, board, ports), board, images,
                                 flash_options_from(app)), as_json=False)
