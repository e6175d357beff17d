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


def nvs_image(app: App, board, options: dict, relay=None) -> tuple[bytes, object]:
    """Resolve credentials and build the nvs partition image in memory; returns (image, partition).
    With `relay` (cli.provision_relay.RelaySetup): the relay URL, token and CA instead of any API key."""
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
    names = ("wifi_ssid", "wifi_password") if relay else tuple(credentials.BY_NAME)
    found = credentials.resolve(options, app.project_dir, names=names, prompt=interactive_prompt())
    data = nvs.image(nvs.entries(found, app.settings, relay.pairs if relay else None), part.size)
    if relay is not None:
        relay.commit()  # the token enrolled only once the image holding it exists
    return data, part


def save_nvs(app: App, board, options: dict, out: Path, relay=None):
    """nvs_image saved to `out` (0600) for flashing by other means; never inside build/ or dist/."""
    from rtflash.errors import ConfigError
    from rtflash.files import write_atomic

    target = out.resolve()
    for shared in ("build", "dist"):
        if target.is_relative_to((app.project_dir / shared).resolve()):
            raise ConfigError(f"--out {out}: credentials stay out of {shared}/ (build output is shared and "
                              f"uploaded); pick a path outside it, e.g. ~/nvs-{board.name}.bin")
    data, part = nvs_image(app, board, options, relay)
    write_atomic(target, data, mode=0o600)
    return target, part


@click.command()
@board_option()
@click.option("--port", "-p", "ports", multiple=True, metavar="PORT",
              help="Serial port or pyserial URL; several allowed (default: rtflash.toml, else auto).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Save the partition image (0600) to FILE instead of writing a device.")
@credential_options
@click.option("--relay", "relay_url", default=None, metavar="URL",
              help="Relay mode: the device calls this `rtflash relay` URL with its own token; no API key on it.")
@click.option("--device", default=None, metavar="NAME", help="Relay mode: the device's name at the relay.")
@click.option("--relay-ca", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Relay mode: the CA of a relay with a private certificate (PEM), stored on the device.")
@click.option("--improv", is_flag=True,
              help="Set only Wi-Fi, through Improv serial on the running firmware (no reflash, no reset).")
@pass_app
def provision(app: App, board_name, ports, out, wifi_ssid, wifi_password, openai_api_key, relay_url, device,
              relay_ca, improv) -> None:
    """Write Wi-Fi and API credentials (or, with --relay, a relay token) to the device's NVS partition.

    Relay mode: the token comes from $RTFLASH_RELAY_TOKEN (printed by `rtflash relay enroll` on the relay
    host), else the device is enrolled in this machine's relay store with a fresh token."""
    from rtflash import console

    if improv:
        if openai_api_key or relay_url or device or relay_ca or out:
            raise click.UsageError("--improv sets Wi-Fi only; the API key or relay token go through NVS "
                                   "(rtflash provision without --improv)")
        from rtflash.cli.provision_improv import provision_improv

        provision_improv(app, board_name, ports, wifi_ssid, wifi_password)
        return
    board = app.board(board_name)
    relay = None
    if relay_url or device or relay_ca:
        if openai_api_key:
            raise click.UsageError("--api-key cannot go with --relay: in relay mode the device holds no API key")
        from rtflash.cli.provision_relay import relay_setup

        relay = relay_setup(board, relay_url, device, relay_ca)
    if board.is_linux and relay is not None:
        from rtflash.cli.provision_relay import LINUX_ELF, linux_hint

        elf = (app.build_dir(board.name) / LINUX_ELF).relative_to(app.project_dir)
        console.info(linux_hint(relay, str(elf)))
        return
    if board.is_linux:
        console.info("the linux board has no NVS partition: `rtflash exec` passes it the API key (from the "
                     "environment, .env or the secrets file) when it runs; nothing to provision")
        return
    options = {"wifi_ssid": wifi_ssid, "wifi_password": wifi_password, "openai_api_key": openai_api_key}
    if out is not None:
        path, part = save_nvs(app, board, options, out, relay)
        console.info(f"credentials partition: {path} ({part.size // 1024} KiB at {part.offset:#x}, mode 0600)")
        console.info(f"write it with: python -m esptool --chip {board.chip} --port PORT write-flash "
                     f"{part.offset:#x} {path}")
        return
    from rtflash import flash
    from rtflash.cli.flash import flash_options_from, report, resolve_ports

    data, part = nvs_image(app, board, options, relay)  # in memory: no copy of the secrets on disk
    images = [flash.Image("nvs", part.offset, data, cache=False)]
    report(app, flash.flash_many(resolve_ports(app, board, ports), board, images,
                                 flash_options_from(app)), as_json=False)
