"""`rtflash provision`: write the credentials (NVS partition) to a device, nothing else."""

from __future__ import annotations

import click

from orchestrator.cli import App, board_option, pass_app


def credential_options(f):
    for opt, name, text in (("--wifi-ssid", "wifi_ssid", "Wi-Fi network name."),
                            ("--wifi-password", "wifi_password", "Wi-Fi password."),
                            ("--api-key", "openai_api_key", "OpenAI API key.")):
        f = click.option(opt, name, default=None, help=text)(f)
    return f


def nvs_image(app: App, board, options: dict) -> tuple[bytes, object]:
    """Resolve credentials and build the nvs partition image in memory; returns (image, partition)."""
    from orchestrator import credentials, nvs
    from orchestrator.cli.secrets import interactive_prompt
    from orchestrator.errors import ConfigError
    from orchestrator.partitions import read_csv
    from orchestrator.render import ensure_rendered

    rendered = ensure_rendered(board, app.settings, app.project_dir)
    layout = read_csv(rendered.out_dir / "partitions.csv")
    part = layout.find("nvs")
    if part is None:
        raise ConfigError(f"{rendered.out_dir / 'partitions.csv'} has no 'nvs' partition; add one")
    found = credentials.resolve(options, app.project_dir, prompt=interactive_prompt())
    return nvs.image(nvs.entries(found, app.settings), part.size), part


def build_nvs(app: App, board, options: dict):
    """nvs_image written to build/<board>/nvs.bin (0600), for flashing it by other means."""
    from orchestrator.files import write_atomic

    data, part = nvs_image(app, board, options)
    out = app.build_dir(board.name) / "nvs.bin"
    write_atomic(out, data, mode=0o600)
    return out, part


@click.command()
@board_option()
@click.option("--port", "-p", "ports", multiple=True, metavar="PORT", help="Serial port (several allowed).")
@credential_options
@pass_app
def provision(app: App, board_name, ports, wifi_ssid, wifi_password, openai_api_key) -> None:
    """Write Wi-Fi and API credentials to the device's NVS partition (no rebuild)."""
    from orchestrator import console

    board = app.board(board_name)
    if board.is_linux:
        console.info("the linux board reads credentials from the environment at run time "
                     "(OPENAI_API_KEY); nothing to provision")
        return
    options = {"wifi_ssid": wifi_ssid, "wifi_password": wifi_password, "openai_api_key": openai_api_key}
    if not ports:
        path, part = build_nvs(app, board, options)
        console.info(f"credentials partition: {path} ({part.size // 1024} KiB at {part.offset:#x}, mode 0600)")
        console.info(f"write it with: rtflash provision --board {board.name} --port PORT "
                     f"(or: python -m esptool --chip {board.chip} --port PORT write-flash {part.offset:#x} {path})")
        return
    from orchestrator import flash
    from orchestrator.cli.flash import flash_options_from, report, resolve_ports

    data, part = nvs_image(app, board, options)  # in memory: no copy of the secrets on disk
    images = [flash.Image("nvs", part.offset, data, cache=False)]
    report(app, flash.flash_many(resolve_ports(app, board, ports), board, images,
                                 flash_options_from(app)), as_json=False)
