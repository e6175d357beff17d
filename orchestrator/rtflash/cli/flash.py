"""`rtflash flash`, `rtflash erase` and `rtflash ports`: the flash layer for people."""

from __future__ import annotations

import sys

import click

from rtflash.cli import App, board_option, firmware_option, pass_app
from rtflash.cli.devices import flash_options_from, report, resolve_ports

BEFORE = click.Choice(["default-reset", "usb-reset", "no-reset"])
AFTER = click.Choice(["hard-reset", "no-reset", "watchdog-reset"])


def port_options(f):
    """--port (several), --baud, --before/--after: shared by flash, erase, provision and run."""
    f = click.option("--after", type=AFTER, default="hard-reset", show_default=True,
                     help="What to do with the chip when done.")(f)
    f = click.option("--before", type=BEFORE, default="default-reset", show_default=True,
                     help="How to enter the bootloader (no-reset: you hold BOOT and tap RESET).")(f)
    f = click.option("--baud", type=click.IntRange(9600, 5_000_000), default=None,
                     help="Baud rate for writing (default: rtflash.toml, else 921600).")(f)
    return click.option("--port", "-p", "ports", multiple=True, metavar="PORT",
                        help="Serial port or pyserial URL; several flash in parallel; "
                             "'auto' picks the only board found (default: rtflash.toml, else auto).")(f)


PROGRESS_EVERY = 1.0  # seconds between progress lines per device when stderr is not a terminal


def run_flash(app: App, board, port_list: list[str], images, options, quiet: bool = False):
    """Flash with one rich progress row per device on a terminal; elsewhere (a pipe, a CI log) one
    progress line per device at most every PROGRESS_EVERY seconds, so a long write is never silent.
    Returns the DeviceResults."""
    import time

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from rtflash import console, flash

    live = console.console().is_terminal
    progress = Progress(TextColumn("[bold]{task.fields[port]}[/]"), BarColumn(), DownloadColumn(),
                        TimeElapsedColumn(), TextColumn("{task.description}"), console=console.console(),
                        transient=True, disable=quiet or not live)
    said: dict[str, float] = {}
    with progress:
        tasks = {p: progress.add_task("connecting", total=None, port=p) for p in port_list}

        def on_progress(port: str, what: str, done: int, total: int) -> None:
            if live:
                progress.update(tasks[port], completed=done, total=total, description=what[-40:])
                return
            now = time.monotonic()
            if quiet or not total or now - said.get(port, -PROGRESS_EVERY) < PROGRESS_EVERY:
                return
            said[port] = now
            console.info(f"{port}: {(what or 'writing').rstrip(' .:').lower()} {done * 100 // total}% "
                         f"({done} of {total})")

        def on_line(port: str, line: str) -> None:
            if app.verbose and line:
                progress.console.print(f"{port}: {line}", markup=False, highlight=False)

        try:
            return flash.flash_many(port_list, board, images, options, on_progress, on_line)
        except KeyboardInterrupt as stop:
            from rtflash.errors import Terminated
            from rtflash.esptool_log import Cancelled

            what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
            cancelled = Cancelled(f"{what}: the device stays in its bootloader; run the same command again "
                                  "to finish (it writes only what is still missing, and verifies)")
            cancelled.exit_code = getattr(stop, "exit_code", Cancelled.exit_code)
            raise cancelled from None


def load_images(app: App, board, force: bool, with_credentials: bool, cred_options: dict | None = None):
    """The last build's images plus the credentials, each checked for what it claims to be
    (rtflash.images: never written when broken, --force or not; a --firmware DIR build too) and checked
    to fit its partition (--force only warns)."""
    from rtflash import console, flash
    from rtflash.artifacts import check_fits, last_build
    from rtflash.errors import ConfigError
    from rtflash.images import check_build

    build_dir = app.build_dir(board.name)
    artifacts = last_build(board, build_dir)
    nvs = None
    if with_credentials:
        from rtflash.cli.nvs_image import nvs_image

        data, part = nvs_image(app, board, cred_options or {})
        nvs = (part.offset, data)
    images = flash.images_for(artifacts, nvs)
    rebuild = board.name if app.firmware is None else f"{board.name} --firmware {app.firmware.source}"
    checked = check_build(images, board.chip, rebuild, {r.offset: r.path for r in artifacts.regions})
    try:
        check_fits(artifacts, build_dir / "config" / "partitions.csv", checked.layout)
    except ConfigError as exc:
        if not force:
            raise ConfigError(f"{exc} (or --force to write anyway)") from None
        console.warn(str(exc))
    return images


@click.command()
@board_option()
@port_options
@click.option("--erase", is_flag=True, help="Erase the whole flash first (also forgets Wi-Fi/API settings).")
@click.option("--full", is_flag=True, help="Write every sector (no fast reflash of changed sectors).")
@click.option("--force", is_flag=True, help="Write even if the flash size, chip revision or partitions do not match the board "
                   "(never to another chip).")
@click.option("--no-credentials", is_flag=True, help="Do not write the Wi-Fi/API credentials partition.")
@click.option("--yes", "-y", is_flag=True, help="With --erase: erase the whole flash without asking; with NVS "
              "encryption ([security] in rtflash.toml): burn a new device's eFuse key without asking (for scripts).")
@click.option("--json", "as_json", is_flag=True, help="One JSON result object per device on stdout.")
@firmware_option(bake=False)
@pass_app
def flash(app: App, board_name, ports, baud, before, after, erase, full, force, no_credentials, yes, as_json,
          firmware_dir=None) -> None:
    """Write the last build (and the credentials) to one or more devices."""
    from rtflash.errors import ConfigError

    board = app.board(board_name)
    if board.is_linux:
        raise ConfigError("the linux board runs on this machine: use rtflash exec --board linux")
    if app.use_firmware(firmware_dir, sources=False) is not None and not no_credentials:
        if not as_json:
            from rtflash import console

            console.info(f"{app.firmware.name}: the credentials partition is not written (that firmware does not "
                         "read rtflash's NVS credentials)")
        no_credentials = True
    from rtflash.settings import security_for

    security = security_for(app.settings, board.name)
    encrypted = security.hmac and not no_credentials  # credentials go encrypted per device, after the app
    images = load_images(app, board, force, with_credentials=not no_credentials and not encrypted)
    port_list = resolve_ports(app, board, ports)
    if erase and not yes:
        confirm_whole_erase(port_list, "--erase")
    options = flash_options_from(app, baud, before, after, full=full, erase=erase, force=force)
    report(app, run_flash(app, board, port_list, images, options, quiet=as_json), as_json)
    if encrypted:
        from rtflash.cli.provision_encrypt import provision_encrypted

        provision_encrypted(app, board, tuple(port_list), {}, None, security.nvs_hmac_key_block, yes)


@click.command()
@board_option()
@port_options
@click.option("--region", nargs=2, metavar="OFFSET SIZE", default=None,
              help="Erase only this region (hex or decimal, 4 KB aligned), e.g. --region 0x9000 0x6000.")
@click.option("--force", is_flag=True, help="Erase even if the chip or the flash size does not match the board.")
@click.option("--yes", "-y", is_flag=True, help="Erase the whole flash without asking (for scripts).")
@click.option("--json", "as_json", is_flag=True, help="One JSON result object per device on stdout.")
@pass_app
def erase(app: App, board_name, ports, baud, before, after, region, force, yes, as_json) -> None:
    """Erase a device's flash (all of it, or one region)."""
    from rtflash import flash

    board = app.board(board_name)
    span = parse_region(region, board, force) if region else None
    port_list = resolve_ports(app, board, ports)
    if span is None and not yes:
        confirm_whole_erase(port_list, "--region OFFSET SIZE")
    options = flash_options_from(app, baud, before, after, force=force)
    report(app, [flash.erase_device(p, board, options, span) for p in port_list], as_json)


def parse_region(region: tuple[str, str], board, force: bool) -> tuple[int, int]:
    """OFFSET SIZE as numbers, 4 KB aligned, inside the board's flash (the device's is checked too)."""
    from rtflash.errors import ConfigError

    given = f"--region {region[0]} {region[1]}"
    try:
        offset, size = int(region[0], 0), int(region[1], 0)
    except ValueError:
        raise ConfigError(f"{given}: give two numbers, e.g. 0x9000 0x6000") from None
    if offset < 0 or size <= 0 or offset % 0x1000 or size % 0x1000:
        raise ConfigError(f"{given}: offset and size must be multiples of 0x1000, size at least 0x1000")
    if board.flash_bytes and offset + size > board.flash_bytes and not force:
        raise ConfigError(f"{given}: ends at {offset + size:#x}, past the end of board {board.name}'s "
                          f"{board.flash_size} flash ({board.flash_bytes:#x}); give a region inside it")
    return offset, size


def confirm_whole_erase(port_list: list[str], instead: str) -> None:
    """A whole-chip erase also wipes the Wi-Fi/API settings: ask on a terminal, refuse a script without --yes."""
    from rtflash.errors import ConfigError

    what = f"erase the whole flash of {', '.join(port_list)} (firmware and Wi-Fi/API settings)"
    if not sys.stdin.isatty():
        other = f", or {instead}" if instead.startswith("--region") else f", or leave out {instead}"
        raise ConfigError(f"{what}: pass --yes to confirm (no terminal to ask on){other}")
    if not click.confirm(f"{what}?", default=False, err=True):
        from rtflash import console

        console.info("nothing erased")
        raise click.exceptions.Exit(1)


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Also list ports with no known USB bridge.")
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout.")
def ports(show_all, as_json) -> None:
    """List serial ports, with USB VID:PID, serial number and the bridge chip guessed."""
    from rtflash import console
    from rtflash.ports import list_ports

    found = [p for p in list_ports() if show_all or p.bridge != "unknown"]
    if as_json:
        console.emit_json([p.to_dict() for p in found])
        return
    if not found:
        console.info("no USB serial ports found (plug the board in with a data cable; --all lists every port)")
        return
    from rich.table import Table

    table = Table("port", "usb id", "bridge", "serial", "description", box=None)
    for p in found:
        table.add_row(p.device, p.usb_id(), p.bridge, p.serial_number or "", p.description)
    console.out_console().print(table)
