"""`rtflash provision --improv`: Wi-Fi through Improv serial on the running firmware (rtflash.improv)."""

from __future__ import annotations

from rtflash.cli import App


def provision_improv(app: App, board_name: str | None, ports: tuple[str, ...], wifi_ssid: str | None,
                     wifi_password: str | None) -> None:
    """One line per state change; the API key or relay token keep going through NVS (say so at the end)."""
    import click

    from rtflash import console, credentials
    from rtflash.cli.secrets import interactive_prompt
    from rtflash.improv import provision

    if len(ports) > 1:
        raise click.UsageError("--improv talks to one device at a time: give one --port")
    port = ports[0] if ports else app.settings.port
    if not port:
        from rtflash.cli.devices import resolve_ports

        port = resolve_ports(app, app.board(board_name), ())[0]
    found = credentials.resolve({"wifi_ssid": wifi_ssid, "wifi_password": wifi_password}, app.project_dir,
                                names=("wifi_ssid", "wifi_password"), prompt=interactive_prompt())
    ssid, password = found["wifi_ssid"].value, found["wifi_password"].value
    console.info(f"{port}: Improv Wi-Fi serial, network \"{ssid}\" (password from {found['wifi_password'].source})")
    outcome = provision(port, ssid, password, on_line=lambda line: console.result(f"{port}: {line}"))
    console.result(f"{port}: Wi-Fi set: {outcome.state}")
    console.info("the API key or relay token go through NVS: `rtflash provision --board BOARD --port PORT` "
                 "(or --relay URL --device NAME)")
