"""`rtflash monitor`: watch a device's serial log (rtflash.monitor does the work)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from rtflash.cli import App, board_option, pass_app


def register_known_secrets(app: App) -> None:
    """Every secret rtflash can find without asking is masked in what the monitor shows and saves."""
    from rtflash import console, credentials
    from rtflash.errors import CredentialError

    for name in credentials.SECRET_NAMES:
        try:
            credentials.resolve({}, app.project_dir, names=(name,), required=False)
        except CredentialError as exc:  # registered before validation; an unreadable store is worth a word
            if "readable by others" in str(exc) or "unreadable" in str(exc) or "cannot read" in str(exc):
                console.warn(f"{exc} (secrets from it are not masked in the monitor)")


def make_rebuild(app: App, board):
    """Ctrl-T F: the same build as `rtflash build`, then the same fast reflash as `rtflash flash` (app only)."""
    def rebuild(port: str) -> None:
        from rtflash.cli.build import run_build
        from rtflash.errors import ConfigError, FlashError

        run_build(app, board, None, False)
        try:
            from rtflash.cli.flash import (
                flash_options_from,
                load_images,
                run_flash,
            )
        except ImportError:
            raise ConfigError("built, but this rtflash has no flash layer; flash with `rtflash flash`") from None
        images = load_images(app, board, force=False, with_credentials=False)
        results = run_flash(app, board, [port], images, flash_options_from(app))
        failed = [r for r in results if not r.ok]
        if failed:
            raise FlashError(failed[0].error)

    return rebuild


def _board_or_none(app: App, name: str | None):
    if name or app.settings.board:
        return app.board(name)
    return None


def _output_mode(as_json: bool):
    """json, terminal (colour and a status row) or plain; rich decides colour (NO_COLOR: none at all)."""
    from rich.console import Console

    con = Console(file=sys.stdout)
    color = None if os.environ.get("NO_COLOR") else con.color_system
    if as_json:
        return "json", None, con.width
    return ("terminal" if con.is_terminal else "plain"), color, con.width


def _open_log(path: Path | None, binary: bool):
    """The --log file, mode 0600 (device output may hold secrets); an existing one is tightened first."""
    import stat

    from rtflash.errors import ConfigError

    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"--log {path}: cannot write ({exc.strerror}); pick a writable file") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):  # not /dev/null or a FIFO: those are not ours to chmod
            if stat.S_IMODE(info.st_mode) & 0o077:
                os.fchmod(fd, 0o600)
            os.ftruncate(fd, 0)
    except OSError as exc:
        os.close(fd)
        raise ConfigError(f"--log {path}: readable by others and cannot be made private ({exc.strerror}); "
                          "pick a file of your own") from None
    return os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="\n")


@click.command()
@board_option()
@click.option("--port", "-p", default=None, metavar="P",
              help="Serial port, 'auto', or a pyserial URL (socket://, rfc2217://). Default: rtflash.toml, else auto.")
@click.option("--baud", "-B", type=click.IntRange(300, 5_000_000), default=None,
              help="Baud rate (default: monitor_baud in rtflash.toml, else 115200).")
@click.option("--elf", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="App ELF for decoding backtraces (default: the board's last build).")
@click.option("--timestamps", is_flag=True, help="Prefix each line with the host time (Ctrl-T T toggles).")
@click.option("--filter", "filters", multiple=True, metavar="TAG:LEVEL",
              help="Show TAG up to LEVEL (N E W I D V); '*:W' for every other tag. Several allowed.")
@click.option("--grep", metavar="REGEX", help="Highlight matches of REGEX.")
@click.option("--raw", is_flag=True, help="Pass the device's bytes through untouched (secrets still masked).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Also save the plain text (every line, filters do not apply) to FILE (mode 0600).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line on stdout.")
@click.option("--no-reconnect", is_flag=True, help="Fail (exit 1) when the port goes away instead of waiting for it.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Stop after SECONDS (for scripts).")
@pass_app
def monitor(app: App, board_name, port, baud, elf, timestamps, filters, grep, raw, log_path, as_json,
            no_reconnect, timeout) -> None:
    """Watch the device's log: colours, filters, decoded panics, reconnect after resets.

    Keys: Ctrl-] quits; Ctrl-T then R resets the device, T toggles timestamps, F rebuilds and
    flashes, H shows help. Other keys are sent to the device.
    """
    import queue

    from rtflash.errors import ConfigError
    from rtflash.monitor.parser import parse_filters
    from rtflash.monitor.reader import SerialReader
    from rtflash.monitor.session import compile_grep

    if raw and as_json:
        raise ConfigError("--raw and --json do not mix: --raw passes bytes through, --json parses lines")
    try:
        rules = parse_filters(filters)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    pattern = compile_grep(grep)
    board = _board_or_none(app, board_name)
    opts = _options(app, board, port, baud, elf, rules, not no_reconnect, timeout)
    reader = SerialReader(opts.url, opts.baud, queue.Queue(), reconnect=opts.reconnect)
    reader.open()
    log = _open_log(log_path, binary=raw)
    try:
        _run(app, board, opts, reader, log, raw, as_json, timestamps, pattern)
    finally:
        if log is not None:
            log.close()


def _options(app: App, board, port, baud, elf, rules, reconnect: bool, timeout):
    """Port, baud, ELF and toolchain: options first, then rtflash.toml and the board's last build."""
    from rtflash.cli.flash import resolve_ports
    from rtflash.monitor import decoder
    from rtflash.monitor.session import MonitorOptions

    if elf is not None:
        elf = decoder.check_elf(elf)
    elif board is not None:
        elf = decoder.find_elf(app.build_dir(board.name))
    register_known_secrets(app)
    url = resolve_ports(app, board, (port,) if port else ())[0]
    return MonitorOptions(
        url=url, baud=baud or app.settings.monitor_baud, elf=elf, filters=rules, reconnect=reconnect,
        timeout=timeout, toolchain_prefix=decoder.toolchain_prefix(board.chip if board else "esp32s3"),
        elf_hint=(f"build first (rtflash build --board {board.name}) or pass --elf FILE" if board
                  else "pass --elf FILE or --board NAME"))


def _run(app, board, opts, reader, log, raw, as_json, timestamps, pattern) -> None:
    from rtflash.monitor.session import Monitor
    from rtflash.monitor.view import RawSink, View

    mode, color, width = _output_mode(as_json)
    if raw:
        mode, color = "plain", None  # rtflash's own notices go to stderr, the device's bytes to stdout
    view = View(sys.stdout, sys.stderr, mode, timestamps, pattern, None if raw else log, color, width)
    sink = RawSink(sys.stdout.buffer, log) if raw else None
    rebuild = make_rebuild(app, board) if board is not None and not board.is_linux else None
    header = f"monitoring {reader.path} at {opts.baud} baud"
    if sys.stdin.isatty():
        header += " | Ctrl-] quit | Ctrl-T H help"
    view.notice(header)
    session = Monitor(opts, reader, view=view, raw=sink, rebuild=rebuild)
    session.run()
    if session.lost:
        from rtflash.errors import PortError

        raise PortError(f"port {reader.path} gone ({session.lost}) and --no-reconnect was given: check the "
                        "device and its cable, or leave out --no-reconnect to wait for it to come back")
