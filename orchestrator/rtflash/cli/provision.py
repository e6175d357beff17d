"""`rtflash provision`: write the credentials (NVS partition) to a device, nothing else."""

from __future__ import annotations

from pathlib import Path

import click

from rtflash.cli import App, board_option, pass_app
from rtflash.cli.nvs_image import credential_options, nvs_image, save_nvs


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
@click.option("--encrypt", is_flag=True,
              help="Encrypt the partition with a per-device key burned into an eFuse block (HMAC_UP; ESP32-S3; "
                   "irreversible; also [security] nvs_encryption = \"hmac\" in rtflash.toml).")
@click.option("--yes", "-y", is_flag=True, help="With --encrypt: burn the eFuse key without asking (for scripts).")
@click.option("--improv", is_flag=True,
              help="Set only Wi-Fi, through Improv serial on the running firmware (no reflash, no reset).")
@pass_app
def provision(app: App, board_name, ports, out, wifi_ssid, wifi_password, openai_api_key, relay_url, device,
              relay_ca, encrypt, yes, improv) -> None:
    """Write Wi-Fi and API credentials (or, with --relay, a relay token) to the device's NVS partition.

    Relay mode: the token comes from $RTFLASH_RELAY_TOKEN (printed by `rtflash relay enroll` on the relay
    host), else the device is enrolled in this machine's relay store with a fresh token."""
    from rtflash import console

    if improv:
        if encrypt:
            raise click.UsageError("--improv cannot go with --encrypt: Improv hands Wi-Fi to the running firmware, "
                                   "which stores it in its own NVS (encrypted when that is); --encrypt writes a whole "
                                   "partition (rtflash provision --encrypt without --improv)")
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
        from rtflash.cli.provision_relay import configured_store, relay_setup

        relay = relay_setup(board, relay_url, device, relay_ca, configured_store(app.settings))
    if board.is_linux and relay is not None:
        from rtflash import credentials
        from rtflash.cli.provision_relay import linux_hint

        path = credentials.store_relay(relay.url, relay.token, relay.ca_pem)  # the linux board's "NVS"
        relay.commit()  # a minted token is enrolled only once it is held somewhere
        console.info(linux_hint(relay, path))
        return
    if board.is_linux:
        console.info("the linux board has no NVS partition: `rtflash exec` passes it the API key (from the "
                     "environment, .env or the secrets file) when it runs; nothing to provision")
        return
    options = {"wifi_ssid": wifi_ssid, "wifi_password": wifi_password, "openai_api_key": openai_api_key}
    from rtflash.settings import security_for

    security = security_for(app.settings, board.name)
    if encrypt or security.hmac:
        from rtflash.cli.provision_encrypt import provision_encrypted

        if out is not None:
            raise click.UsageError("--out cannot go with NVS encryption: the image is encrypted for one device's "
                                   "eFuse key; write it to the device with --port")
        provision_encrypted(app, board, ports, options, relay, security.nvs_hmac_key_block, yes)
        return
    if out is not None:
        path, part = save_nvs(app, board, options, out, relay)
        console.info(f"credentials partition: {path} ({part.size // 1024} KiB at {part.offset:#x}, mode 0600)")
        console.info(f"write it with: python -m esptool --chip {board.chip} --port PORT write-flash "
                     f"{part.offset:#x} {path}")
        return
    from rtflash import flash
    from rtflash.cli.devices import flash_options_from, report, resolve_ports

    data, part = nvs_image(app, board, options, relay)  # in memory: no copy of the secrets on disk
    images = [flash.Image("nvs", part.offset, data, cache=False)]
    report(app, flash.flash_many(resolve_ports(app, board, ports), board, images,
                                 flash_options_from(app)), as_json=False)
