"""The credentials partition image, shared by `rtflash provision` and `rtflash flash` (one floor below
both, so neither command module imports the other): options, resolve, build in memory, save 0600."""

from __future__ import annotations

from pathlib import Path

import click

from rtflash.cli import App


def credential_options(f):
    for opt, name, text in (("--wifi-ssid", "wifi_ssid", "Wi-Fi network name."),
                            ("--wifi-password", "wifi_password", "Wi-Fi password."),
                            ("--api-key", "openai_api_key", "OpenAI API key.")):
        f = click.option(opt, name, default=None, help=text)(f)
    return f


def nvs_image(app: App, board, options: dict, relay=None, hmac_key: bytes | None = None) -> tuple[bytes, object]:
    """Resolve credentials and build the nvs partition image in memory; returns (image, partition).
    With `relay` (cli.provision_relay.RelaySetup): the relay URL, token and CA instead of any API key.
    With `hmac_key`: encrypted for the device holding that eFuse HMAC key (rtflash.efuse)."""
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
    data = nvs.image(nvs.entries(found, app.settings, relay.pairs if relay else None), part.size, hmac_key)
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
