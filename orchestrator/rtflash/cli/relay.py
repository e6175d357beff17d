"""`rtflash relay serve|enroll|devices|revoke|migrate` (the relay half of `provision --relay`: provision_relay.py).

The store (relay/store.py): `--store` on each command, else $RTFLASH_RELAY_STORE, else `[relay] store`
in rtflash.toml, else ~/.config/rtflash/relay-devices.db (SQLite); a postgresql:// URL for several
relay hosts. `relay migrate --from FILE` imports the JSON store of earlier versions once.

Tokens: `relay enroll NAME` mints a token, keeps its hash and prints the token ONCE on stdout (for a
relay on another host: give it to `provision` there as $RTFLASH_RELAY_TOKEN). `provision --relay URL
--device NAME` without $RTFLASH_RELAY_TOKEN enrolls the device in this machine's store itself, with a
fresh token written straight into the NVS image (re-provisioning replaces the token: the old copy
stops working); a revoked device is refused until `relay enroll NAME --replace` lets it back in.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from rtflash.cli import App, board_option, json_errors, pass_app
from rtflash.cli.provision_relay import TOKEN_ENV, ca_context, configured_store

_PATH = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def relay() -> None:
    """Run the relay that keeps the OpenAI API key off the devices; enroll, list and revoke devices.

    Devices send their call set-up (SDP offer) to the relay with their own token; the relay adds the
    session settings from rtflash.toml and the API key, and forwards it to the Realtime API. Devices
    live in ~/.config/rtflash/relay-devices.db (SQLite, hashes only), or where --store,
    $RTFLASH_RELAY_STORE or rtflash.toml's [relay] store say (a postgresql:// URL for several hosts).
    """


def store_option(fn):
    return click.option("--store", "store_at", default=None, metavar="PATH|URL",
                        help="The relay's store: a SQLite file or a postgresql:// URL (default: $RTFLASH_RELAY_STORE, "
                             "rtflash.toml's [relay] store, ~/.config/rtflash/relay-devices.db).")(fn)


def _open_store(app: App | None, store_at: str | None, check_legacy: bool = True):
    """The store the options, environment and rtflash.toml name (sqlstore.open_store)."""
    from rtflash.relay.sqlstore import open_store

    configured = configured_store(app.settings) if app is not None and not store_at else ""
    return open_store(store_at, configured, check_legacy=check_legacy)


@relay.command()
@click.option("--host", default=None, help="Address to listen on (default 0.0.0.0; 127.0.0.1 with --behind-proxy).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="TCP port (default 8443; 8080 behind a proxy).")
@click.option("--cert", type=_PATH, default=None, metavar="FILE", help="The relay's TLS certificate chain (PEM).")
@click.option("--key", "key_file", type=_PATH, default=None, metavar="FILE", help="Its private key (PEM).")
@click.option("--behind-proxy", is_flag=True,
              help="Plain HTTP on 127.0.0.1 only, for a TLS-terminating reverse proxy on this host (devices "
                   "still reach the proxy over HTTPS).")
@click.option("--upstream", default=None, metavar="URL",
              help="Realtime API create-call URL (default https://api.openai.com/v1/realtime/calls).")
@click.option("--upstream-ca", type=_PATH, default=None, metavar="FILE",
              help="Trust this CA for the upstream instead of the system's (tests, private gateways).")
@click.option("--rate", type=click.FloatRange(min=0.1), default=6.0, show_default=True, help="Calls per minute per device.")
@click.option("--burst", type=click.IntRange(min=1), default=5, show_default=True, help="Calls a device may make back to back.")
@click.option("--concurrent", type=click.IntRange(min=1), default=2, show_default=True,
              help="Call set-ups of one device in flight at once.")
@click.option("--max-body", type=click.IntRange(1024, 1 << 20), default=64 * 1024, show_default=True,
              help="Largest offer accepted, in bytes.")
@click.option("--read-timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True,
              help="Seconds a device has for each of: the TLS handshake, the request headers, the offer.")
@click.option("--upstream-timeout", type=click.FloatRange(0.5, 300), default=20.0, show_default=True,
              help="Seconds the Realtime API has to answer.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes serving one listening socket (TLS handshakes on every core); the per-device limits "
                   "hold across them (they live in the store).")
@store_option
@pass_app
def serve(app: App, host, port, cert, key_file, behind_proxy, upstream, upstream_ca, rate, burst, concurrent,
          max_body, read_timeout, upstream_timeout, workers, store_at) -> None:
    """Serve devices until Ctrl-C: the API key from the environment, .env, the secrets file or keyring."""
    from rtflash import credentials
    from rtflash.cli.secrets import interactive_prompt
    from rtflash.relay.config import session_object, session_values
    from rtflash.relay.limits import LimitConfig
    from rtflash.relay.server import DEFAULT_UPSTREAM, RelayConfig

    server_ssl, host, port = _listen(cert, key_file, behind_proxy, host, port)
    upstream = upstream or DEFAULT_UPSTREAM
    if urlsplit(upstream).scheme != "https":
        raise click.BadParameter(f"{upstream!r}: the upstream must be https:// (the API key travels to it)",
                                 param_hint="--upstream")
    upstream_ssl = ca_context(upstream_ca, "--upstream-ca") if upstream_ca else None
    settings = app.settings
    store = _open_store(app, store_at)
    devices = store.devices()
    store.close()  # the workers fork after this: each opens its own connections
    key = credentials.resolve({}, app.project_dir, names=("openai_api_key",),
                              prompt=interactive_prompt())["openai_api_key"].value
    config = RelayConfig(api_key=key, store=store, upstream=upstream, upstream_ssl=upstream_ssl,
                         upstream_ca=str(upstream_ca.resolve()) if upstream_ca else "",
                         session_for=lambda d: session_object(session_values(settings, d.name, d.board)),
                         limits=LimitConfig(rate, burst, concurrent), max_body=max_body, read_timeout=read_timeout,
                         upstream_timeout=upstream_timeout, behind_proxy=behind_proxy)
    _run(config, host, port, server_ssl, len(devices), store.where, workers)


def _listen(cert, key_file, behind_proxy, host, port):
    from rtflash.errors import ConfigError

    if behind_proxy:
        if cert or key_file:
            raise click.UsageError("--behind-proxy serves plain HTTP: drop --cert/--key (the proxy holds them)")
        if host not in (None, "127.0.0.1", "localhost", "::1"):
            raise click.BadParameter(f"{host}: --behind-proxy listens on 127.0.0.1 only (the proxy on this host "
                                     "forwards to it)", param_hint="--host")
        return None, "127.0.0.1" if host in (None, "localhost") else host, 8080 if port is None else port
    if not (cert and key_file):
        raise click.UsageError("the relay needs TLS: pass --cert FILE --key FILE (its certificate and key), or "
                               "--behind-proxy when a TLS proxy on this host forwards to it")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key_file)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"--cert {cert} / --key {key_file}: cannot load the certificate and key ({exc.__class__.__name__}:"
                          f" {getattr(exc, 'reason', None) or exc}); give a PEM chain and its matching key") from None
    # No TLS 1.3 session tickets: a device opens a fresh connection per call and never resumes (the
    # firmware's esp_http_client keeps no ticket), so the two tickets OpenSSL sends by default after
    # every handshake were pure cost: their encryption and one more write per connection
    # (bench/relay_bench.py, CPU per offer).
    ctx.num_tickets = 0
    return ctx, host or "0.0.0.0", 8443 if port is None else port


def _shared_socket(host: str, port: int):
    """One listening socket for all the workers (made before they fork): the kernel hands each new
    connection to a worker waiting in accept, so an idle worker takes it (SO_REUSEPORT would spread them
    by address hash, busy or not)."""
    import socket

    from rtflash.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=512)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port or --host") from None
    sock.setblocking(False)
    return sock


def _fork_workers(count: int, serve_one) -> list[int]:
    """Fork `count` children that each run serve_one(i) and exit; returns their pids."""
    pids = []
    for i in range(1, count + 1):
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without running the parent's atexit/cleanup
            code = 0
            try:
                serve_one(i)
            except BaseException:  # noqa: BLE001 - a worker's failure is logged by its relay; exit non-zero
                code = 1
            os._exit(code)
        pids.append(pid)
    return pids


def _run(config, host: str, port: int, server_ssl, enrolled: int, store_where: str, workers: int = 1) -> None:
    import asyncio
    import logging
    import signal
    from dataclasses import replace

    from rtflash import console
    from rtflash.errors import ConfigError
    from rtflash.relay.server import RedactingFormatter, Relay

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(message)s"))
    for name, level in (("rtflash.relay", logging.INFO), ("aiohttp", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(level)

    sock = _shared_socket(host, port) if workers > 1 else None

    async def main(worker: int = 0) -> None:
        relay_ = Relay(replace(config, worker=worker))
        try:
            await relay_.start(host, port, server_ssl, sock=sock)
        except OSError as exc:
            await relay_.stop()
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port or --host") from None
        if worker:
            await _serve_until_signal(relay_)
            return
        console.info(f"relay listening on {relay_.url} -> {config.upstream} ({enrolled} device(s) in {store_where}"
                     f"{f'; {workers} workers' if workers > 1 else ''}{'; uvloop' if run is not asyncio.run else ''});"
                     " Ctrl-C stops it")
        if not enrolled:
            console.warn("no device enrolled yet: `rtflash relay enroll NAME` or `rtflash provision --relay URL "
                         "--device NAME`")
        await _serve_until_signal(relay_)
        for pid in children:  # the workers stop with the first process
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            await asyncio.to_thread(os.waitpid, pid, 0)
        console.info(f"relay stopped ({sum(relay_.statuses.values())} request(s), "
                     f"{relay_.statuses.get(201, 0)} call(s) set up{' by the first worker' if children else ''})")

    run = _loop_runner()
    children = _fork_workers(workers - 1, lambda i: run(main(i))) if workers > 1 else []
    run(main())


def _loop_runner():
    """uvloop's `run` (installed with rtflash where it builds: not on Windows), else asyncio's;
    $RTFLASH_RELAY_LOOP=asyncio forces asyncio's, =uvloop insists on uvloop. Why uvloop by default: its
    loop and its TLS layer are compiled (asyncio's SSL protocol is Python), which cut the relay's CPU
    per offer by 0.7-0.95 ms (of 5-6) at 20 and 100 offers/s and its burst CPU by 0.2-0.8 ms; the
    200-offer burst's p50 was within 50 ms either way (bench/relay_bench.py, quiet 2-core machine).
    The connection gate (relay/conn.py) and every relay test run on both."""
    import asyncio

    from rtflash.errors import ConfigError

    choice = os.environ.get("RTFLASH_RELAY_LOOP", "").strip() or "auto"
    if choice == "asyncio":
        return asyncio.run
    if choice not in ("auto", "uvloop"):
        raise ConfigError(f"$RTFLASH_RELAY_LOOP={choice!r}: use uvloop (the default where installed) or asyncio")
    try:
        import uvloop
    except ImportError:
        if choice == "auto":
            return asyncio.run
        raise ConfigError("$RTFLASH_RELAY_LOOP=uvloop: uvloop is not installed here; pip install uvloop, or unset "
                          "it for asyncio's loop") from None
    return uvloop.run


async def _serve_until_signal(relay_) -> None:
    """Serve until SIGINT/SIGTERM, then stop the relay (last-use times flushed)."""
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await relay_.stop()


@relay.command()
@click.argument("name")
@board_option()
@click.option("--replace", is_flag=True, help="Give an enrolled (or revoked) device a new token; the old one stops working.")
@store_option
@pass_app
def enroll(app: App, name: str, board_name: str | None, replace: bool, store_at: str | None) -> None:
    """Enroll device NAME: prints its token once (stdout); the relay keeps only the token's hash."""
    from rtflash import console

    board = app.board(board_name).name if board_name else ""
    store = _open_store(app, store_at)
    token = store.enroll(name, board, replace_existing=replace)
    sys.stdout.write(token + "\n")  # the one place a token is shown, on purpose: never through redact
    sys.stdout.flush()
    console.info(f"enrolled {name}{f' (board {board})' if board else ''} in {store.where}: the token above is shown "
                 f"once; put it on the device with {TOKEN_ENV}=<token> rtflash provision --relay URL --device {name}")


@relay.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_option
@pass_app
@json_errors
def devices(app: App, as_json: bool, store_at: str | None) -> None:
    """List enrolled devices: board, state, last use (never a token)."""
    from rtflash import console
    from rtflash.relay.store import describe_age

    store = _open_store(app, store_at)
    found = sorted(store.devices().values(), key=lambda d: d.name)
    if as_json:
        console.emit_json([d.public() for d in found])
        return
    if not found:
        console.info(f"no device enrolled in {store.where}; `rtflash relay enroll NAME` adds one")
        return
    width = max(len(d.name) for d in found)
    for d in found:
        state = f"revoked {d.revoked_at}" if d.revoked else "active"
        console.result(f"{d.name:<{width}}  {d.board or '-':<16}  {state:<29}  last use {describe_age(d.last_use)}")


@relay.command()
@click.argument("name")
@store_option
@pass_app
def revoke(app: App, name: str, store_at: str | None) -> None:
    """Shut device NAME out at once: its next call gets 401 and its calls in progress are hung up."""
    from rtflash import console, credentials
    from rtflash.relay.calls import revoke_calls

    store = _open_store(app, store_at)
    dev = store.revoke(name)  # stored first: whatever happens to the hang-ups, the device is out
    console.info(f"revoked {dev.name} at {dev.revoked_at}: its next call is refused (401); `rtflash relay enroll "
                 f"{dev.name} --replace` lets it back in with a new token")

    def api_key() -> str:  # from serve's sources, asked for only with a call to hang up; never prompted for:
        return credentials.resolve({}, app.project_dir,  # a revoke in a script must not wait on a terminal
                                   names=("openai_api_key",))["openai_api_key"].value

    for line in revoke_calls(store, dev.name, api_key):
        console.info(line)


@relay.command()
@click.option("--from", "source", type=_PATH, required=True, metavar="FILE",
              help="The JSON store of earlier rtflash versions (relay-devices.json; its .calls.json beside it comes along).")
@store_option
@pass_app
def migrate(app: App, source: Path, store_at: str | None) -> None:
    """Import the old JSON device store into the relay's store, once (tokens stay hashes; the file is kept)."""
    from rtflash import console

    store = _open_store(app, store_at, check_legacy=False)
    devices, calls = store.import_json(source.absolute())
    console.info(f"imported {devices} device(s) and {calls} call(s) in progress from {source} into {store.where}; "
                 f"the relay reads only the store now ({source} can go once you have a backup)")
