"""`rtflash secrets set|show|clear` and `rtflash nvs show FILE`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rtflash.cli import App, json_errors, pass_app


def prompt_for(field) -> str:
    """Hidden prompt for a missing credential; only when a person is at the terminal."""
    hide = field.name != "wifi_ssid"
    return click.prompt(field.label, hide_input=hide, default="" if field.name == "wifi_password" else None,
                        show_default=False)


def interactive_prompt():
    return prompt_for if sys.stdin.isatty() else None


@click.group()
def secrets() -> None:
    """Store, show (redacted) or clear the Wi-Fi and API credentials."""


@secrets.command("set")
@click.option("--wifi-ssid", help="Wi-Fi network name.")
@click.option("--wifi-password", help="Wi-Fi password (prompted, hidden, when not given).")
@click.option("--api-key", "openai_api_key", help="OpenAI API key (prompted, hidden, when not given).")
@click.option("--keyring", "use_keyring", is_flag=True, help="Store in the system keyring instead of the file.")
def set_(wifi_ssid, wifi_password, openai_api_key, use_keyring) -> None:
    """Store credentials in ~/.config/rtflash/secrets.toml (0600) or the system keyring."""
    from rtflash import console, credentials, redact

    given = {"wifi_ssid": wifi_ssid, "wifi_password": wifi_password, "openai_api_key": openai_api_key}
    source = {f.name: f.option for f in credentials.FIELDS}
    if all(v is None for v in given.values()):
        if not sys.stdin.isatty():
            raise click.UsageError("give at least one of --wifi-ssid, --wifi-password, --api-key")
        given = {f.name: prompt_for(f) for f in credentials.FIELDS}
        source = dict.fromkeys(given, "the prompt")
    values = {k: v for k, v in given.items() if v is not None}
    redact.register(*(values.get(n) for n in credentials.SECRET_NAMES))
    for name, value in values.items():  # as provision will: refuse now what the device could not hold
        credentials.validate(credentials.Credential(name, value, source[name]))
    if use_keyring:
        try:
            import keyring
        except ImportError:
            raise click.UsageError("the keyring package is not installed: pip install 'rtflash[keyring]'") from None
        for name, value in values.items():
            keyring.set_password(credentials.KEYRING_SERVICE, name, value)
        console.info(f"stored {', '.join(values)} in the system keyring")
        return
    path = credentials.store_secrets(values)
    console.info(f"stored {', '.join(values)} in {path} (mode 0600)")


@secrets.command("show")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout.")
@pass_app
@json_errors
def show(app: App, as_json: bool) -> None:
    """Show which credentials rtflash would use, redacted, and where each comes from."""
    from rtflash import console, credentials
    from rtflash.redact import mask

    found = credentials.resolve({}, app.project_dir, required=False)
    rows = []
    for f in credentials.FIELDS:
        cred = found.get(f.name)
        shown = "" if cred is None else (cred.value if f.name == "wifi_ssid" else mask(cred.value))
        rows.append({"name": f.name, "value": shown, "source": cred.source if cred else "missing"})
    stored, path = credentials.stored_relay()  # relay mode (linux board), from `provision --board linux --relay`
    if stored.get("relay_token"):
        rows.append({"name": "relay_token", "value": mask(stored["relay_token"]),
                     "source": f"secrets file {path} (for {stored.get('relay_url', '?')})"})
    if as_json:
        console.emit_json(rows)
        return
    for row in rows:
        console.result(f"{row['name']:<15} {row['value'] or '-':<20} {row['source']}")


@secrets.command("clear")
@click.argument("names", nargs=-1, type=click.Choice(["wifi_ssid", "wifi_password", "openai_api_key", "relay"]))
def clear(names) -> None:
    """Remove credentials from the secrets file (all when none named; `relay`: the relay URL, token and CA)."""
    from rtflash import console, credentials

    chosen = tuple(n for n in names if n != "relay") + (credentials.RELAY_KEYS if "relay" in names else ())
    chosen = chosen or (*credentials.BY_NAME, *credentials.RELAY_KEYS)
    path = credentials.clear_secrets(chosen)
    console.info(f"cleared {', '.join(chosen)} from {path}")


@click.group()
def nvs() -> None:
    """Inspect NVS partition images."""


@nvs.command("show")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reveal", is_flag=True, help="Show secret values (Wi-Fi password, API key) in full.")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout.")
@json_errors
def nvs_show(file: Path, reveal: bool, as_json: bool) -> None:
    """List namespaces and keys of an NVS image (nvs.bin), secrets redacted unless --reveal."""
    from rtflash import console
    from rtflash import nvs as nvs_core
    from rtflash.redact import mask

    image = nvs_core.read_file(file)

    def value(item):
        secret = item.key in nvs_core.SECRET_KEYS or item.key.endswith(("pass", "password", "key"))
        return str(item.value) if reveal or not secret else mask(str(item.value))

    rows = [{"namespace": i.namespace, "key": i.key, "type": i.type, "value": value(i)} for i in image.items]
    shown = [{k: nvs_core.printable(str(v)) for k, v in row.items()} for row in rows]  # no raw control bytes
    if as_json:
        data = {"pages": image.pages, "active_pages": image.active_pages, "errors": list(image.errors), "items": rows}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")  # not emit_json: --reveal must not be re-redacted
    else:
        out = console.out_console()
        for row in shown:
            out.print(f"{row['namespace']}:{row['key']:<15} {row['type']:<7} {row['value']}", markup=False)
        console.info(f"{file}: {image.active_pages} of {image.pages} pages in use, {len(rows)} keys")
    for err in image.errors:
        console.error(err)
    if image.errors:
        raise click.exceptions.Exit(1)
