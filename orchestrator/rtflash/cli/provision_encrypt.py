"""`rtflash provision --encrypt`: key the device's eFuse (HMAC_UP) once, then write its NVS encrypted."""

from __future__ import annotations

import sys

import click

from rtflash.cli import App


def confirm_burn(port: str, mac: str, block: str, yes: bool) -> None:
    """A burn cannot be undone: ask on a terminal; a script must say --yes."""
    from rtflash import console
    from rtflash.errors import ConfigError

    what = f"burn a new HMAC key into eFuse {block} of {port} (device {mac}; irreversible, the block is used for good)"
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(f"{what}: pass --yes to confirm (no terminal to ask on); nothing burned")
    if not click.confirm(f"{what}?", default=False, err=True):
        console.info("nothing burned, nothing written")
        raise click.exceptions.Exit(1)


def provision_encrypted(app: App, board, ports: tuple[str, ...], options: dict, relay, key_block: int,
                        yes: bool) -> None:
    """Per device: plan (reuse the key found by MAC, or burn into `key_block`), then flash the encrypted image."""
    from rtflash import console, efuse, flash
    from rtflash.cli.devices import flash_options_from, report, resolve_ports
    from rtflash.cli.nvs_image import nvs_image
    from rtflash.errors import ConfigError

    if board.chip != "esp32s3":
        raise ConfigError(f"board {board.name}: NVS encryption with an eFuse HMAC key is set up for the ESP32-S3 "
                          f"only (this board is {board.chip})")
    options_flash = flash_options_from(app)

    def on_line(line: str) -> None:
        if app.verbose and line:
            console.info(line)

    results = []
    for port in resolve_ports(app, board, ports):
        commands = efuse.connect(port, options_flash.before, on_line)
        try:
            mac = efuse.device_mac(commands)
            plan = efuse.plan(mac, efuse.read_blocks(commands.efuses), key_block)
            if plan.burn:
                confirm_burn(port, mac, plan.block_name, yes)
                efuse.burn(commands, plan, on_line)
                console.info(f"{port}: HMAC key burned into eFuse {plan.block_name} (purpose HMAC_UP, read- and "
                             f"write-protected); its copy: {plan.path} (0600, keep a backup)")
            else:
                console.info(f"{port}: device {mac} already keyed in eFuse {plan.block_name}: its key from "
                             f"{plan.path} is reused, nothing burned")
        finally:
            efuse.close(commands)
        data, part = nvs_image(app, board, options, relay, hmac_key=plan.key)
        images = [flash.Image("nvs", part.offset, data, cache=False)]
        results += flash.flash_many([port], board, images, options_flash)
    report(app, results, as_json=False)
