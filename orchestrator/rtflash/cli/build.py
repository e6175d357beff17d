"""`rtflash build` and `rtflash exec` (run the linux build)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rtflash.cli import App, board_option, firmware_option, json_errors, pass_app


def firmware_notices(app: App, board, bake_secrets: bool) -> None:
    """--firmware DIR: what it is, baked secrets, audio pins, TLS and the partition table, before building."""
    if app.firmware is None:
        return
    from rtflash import console
    from rtflash.external import notices, partition_choice

    from rtflash.builder import precedence_note

    lines = notices(app.firmware, board, bake_secrets)
    lines[0] += f" ({precedence_note()})"
    if not board.is_linux:
        lines.insert(1, partition_choice(app.firmware, board)[1])
    for line in lines:
        (console.warn if line.startswith(("--bake-secrets", "audio pins", "TLS")) else console.info)(line)


def run_build(app: App, board, backend: str | None, clean: bool, quiet: bool = False, deps_dir=None,
              bake_secrets: bool = False):
    """Build with a rich progress bar from ninja's [N/M] lines; returns Artifacts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rtflash import console
    from rtflash.builder import build_board
    from rtflash.builder.progress import parse_step

    progress = Progress(TextColumn(f"[bold]{board.name}[/]"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.description}"), console=console.console(),
                        transient=True, disable=quiet)
    with progress:
        task = progress.add_task("starting", total=None)

        def on_line(line: str) -> None:
            step = parse_step(line)
            if step:
                progress.update(task, completed=step.done, total=step.total, description=step.text[-60:])
            elif app.verbose:
                progress.console.print(line, markup=False, highlight=False)

        def on_start(line: str) -> None:
            if not quiet:
                progress.console.print(line, markup=False, highlight=False)

        return build_board(board, app.settings, app.project_dir, backend or app.settings.backend, on_line, clean,
                           deps_dir=deps_dir, on_start=on_start,
                           firmware=app.firmware, bake_secrets=bake_secrets)


def deps_dir_option(f):
    """--deps-dir, shared by build, run and ci (one meaning, one help text)."""
    return click.option("--deps-dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
                        help="Build from local copies of the firmware's pinned dependencies (DIR/<name>, "
                             "DIR/components/<ns>__<name>, e.g. the `rtflash deps` cache): no network needed. "
                             "Default: $RTFLASH_DEPS_DIR, else the deps cache. With --firmware: the empty submodules "
                             "of a clone without --recursive, git checkouts DIR/<name> verified by commit.")(f)


@click.command()
@board_option()
@click.option("--backend", type=click.Choice(["auto", "idf", "pio"]), default=None,
              help="Build tool (default: rtflash.toml, else auto: ESP-IDF when usable, else PlatformIO).")
@click.option("--clean", is_flag=True, help="Remove the previous build output first (keeps config/ and log/).")
@click.option("--json", "as_json", is_flag=True, help="Print the artifacts as JSON on stdout.")
@deps_dir_option
@firmware_option()
@pass_app
@json_errors
def build(app: App, board_name, backend, clean, as_json, deps_dir, firmware_dir, bake_secrets) -> None:
    """Render the board's config and build firmware-src (or --firmware DIR) with idf.py or pio."""
    import time

    from rtflash import console
    from rtflash.artifacts import check_fits

    board = app.board(board_name)
    for w in board.warnings:
        console.warn(w)
    app.use_firmware(firmware_dir, deps_dir)
    if not as_json:
        firmware_notices(app, board, bake_secrets)
    start = time.perf_counter()
    artifacts = run_build(app, board, backend, clean, quiet=as_json, deps_dir=deps_dir, bake_secrets=bake_secrets)
    if not board.is_linux:
        check_fits(artifacts, app.build_dir(board.name) / "config" / "partitions.csv")
    seconds = time.perf_counter() - start
    data = {"ok": True, "board": board.name, "chip": artifacts.chip, "seconds": round(seconds, 2),
            "elf": str(artifacts.elf) if artifacts.elf else None,
            "regions": [{"name": r.name, "offset": hex(r.offset), "path": str(r.path), "size": r.path.stat().st_size}
                        for r in artifacts.regions]}
    if as_json:
        console.emit_json(data)
        return
    for r in data["regions"]:
        console.result(f"  {r['offset']:>9}  {r['size']:>9} bytes  {r['path']}")
    console.result(f"[green]built[/] {board.name} in {seconds:.1f} s", markup=True)


def _is_loopback_url(url: str) -> bool:
    """A 127.0.0.1/::1/localhost URL: a local stand-in or relay, which only reaches 127.0.0.1, so the firmware
    must offer the ICE host candidate of `lo` (RTFLASH_ICE_IFACE, firmware-src/components/peer/rt_peer_iface.c)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


RELAY_TOKEN_ENV = "RTFLASH_RELAY_TOKEN"
RELAY_CA_ENV = "RTFLASH_RELAY_CA"
KEY_ENVS = ("OPENAI_API_KEY", "RTFLASH_OPENAI_API_KEY")


def _relay_token(relay_url: str, project_dir: Path) -> tuple[str, str]:
    """The device token and the relay CA stored with it: $RTFLASH_RELAY_TOKEN (what `relay enroll` prints),
    else the project's .env, else the secrets file where `provision --board linux --relay` keeps them (for
    this relay URL only: a token is good at one relay). ("", no CA) for the env and .env: the CA then comes
    from --relay-ca or $RTFLASH_RELAY_CA. Registered for redaction before anything else."""
    import os

    from rtflash import credentials, redact
    from rtflash.errors import CredentialError
    from rtflash.relay.store import check_token

    token, where, ca = os.environ.get(RELAY_TOKEN_ENV, "").strip(), f"${RELAY_TOKEN_ENV}", ""
    if not token:
        dotenv = credentials.read_dotenv(project_dir / ".env")
        if RELAY_TOKEN_ENV in dotenv:
            token, line = dotenv[RELAY_TOKEN_ENV]
            where = f"{project_dir / '.env'}:{line} ({RELAY_TOKEN_ENV})"
    stored, path = credentials.stored_relay() if not token else ({}, None)
    if not token and stored.get("relay_token"):
        redact.register(stored["relay_token"])
        if stored.get("relay_url", "").rstrip("/") != relay_url.rstrip("/"):
            raise CredentialError(f"--relay {relay_url}: the secrets file {path} holds a token for the relay "
                                  f"{stored.get('relay_url') or '(no URL)'}, not this one; give that URL, or run "
                                  f"`rtflash provision --board linux --relay {relay_url} --device NAME`")
        token, where, ca = stored["relay_token"], f"secrets file {path} (relay_token)", stored.get("relay_ca", "")
    if not token:
        raise CredentialError(f"--relay needs this device's token: none in ${RELAY_TOKEN_ENV}, {project_dir / '.env'} "
                              f"or the secrets file {path}; run `rtflash provision --board linux --relay {relay_url} "
                              f"--device NAME` (stores it there) or export {RELAY_TOKEN_ENV} (the token `rtflash "
                              "relay enroll NAME` prints)")
    redact.register(token)
    return check_token(token, where), ca


def _relay_env(relay_url: str, relay_ca: Path | None, project_dir: Path) -> dict[str, str]:
    """The linux firmware's relay settings (app_config.c reads them instead of NVS): URL, token, CA."""
    import os
    from urllib.parse import urlsplit

    from rtflash.cli.provision_relay import ca_context, ca_der_base64
    from rtflash.errors import ConfigError

    parts = urlsplit(relay_url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise ConfigError(f"--relay {relay_url}: not an https:// URL; give the relay's calls endpoint, e.g. "
                          "https://relay.lan:8443/v1/realtime/calls")
    token, stored_ca = _relay_token(relay_url, project_dir)
    env = {"RTFLASH_RELAY_URL": relay_url, RELAY_TOKEN_ENV: token}
    if relay_ca is not None:
        if not relay_ca.is_file():
            raise ConfigError(f"--relay-ca {relay_ca}: cannot read it; give the PEM CA that signed the relay's "
                              "certificate")
        ca_context(relay_ca, "--relay-ca")
        env[RELAY_CA_ENV] = ca_der_base64(relay_ca)
    elif os.environ.get(RELAY_CA_ENV):  # as `provision --board linux --relay` prints it: base64 DER, one line
        env[RELAY_CA_ENV] = os.environ[RELAY_CA_ENV].strip()
    elif stored_ca:  # the CA `provision --board linux --relay --relay-ca` stored with the token
        env[RELAY_CA_ENV] = stored_ca
    if _is_loopback_url(relay_url):
        env["RTFLASH_ICE_IFACE"] = "lo"
    return env


def _exec_env(api_url: str | None, ca_file: Path | None, mic: Path | None, speaker_out: Path | None,
              rate: int) -> dict[str, str]:
    """The environment the linux firmware reads for these options (names in firmware-src: app_config.c,
    rt_signal_esp.c, rt_audio_wav.c, rt_peer_iface.c), each value checked first: one clear line if bad."""
    import wave
    from urllib.parse import urlsplit

    from rtflash.errors import ConfigError

    env: dict[str, str] = {}
    if api_url is not None:
        parts = urlsplit(api_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigError(f"--api-url {api_url}: not an https:// URL; give the calls endpoint, e.g. "
                              "https://127.0.0.1:8443/v1/realtime/calls")
        env["RTFLASH_API_URL"] = api_url
        if _is_loopback_url(api_url):  # a local stand-in only reaches 127.0.0.1: offer the ICE host candidate of `lo`
            env["RTFLASH_ICE_IFACE"] = "lo"
    if ca_file is not None:
        try:
            pem = ca_file.read_text(errors="replace")
        except OSError as exc:
            raise ConfigError(f"--ca-file {ca_file}: cannot read it ({exc.strerror}); give a PEM CA certificate") from None
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise ConfigError(f"--ca-file {ca_file}: no PEM certificate in it; give the CA as PEM "
                              "(-----BEGIN CERTIFICATE-----)")
        env["RTFLASH_CA_FILE"] = str(ca_file.resolve())
    if mic is not None:
        try:
            with wave.open(str(mic), "rb") as w:
                width, channels, wav_rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
        except (OSError, EOFError, wave.Error) as exc:
            raise ConfigError(f"--mic {mic}: not a readable WAV file ({exc}); give a 16-bit PCM WAV") from None
        if width != 2 or channels not in (1, 2) or wav_rate != rate:
            raise ConfigError(f"--mic {mic}: {8 * width}-bit, {channels} channel(s), {wav_rate} Hz; the firmware needs "
                              f"16-bit mono or stereo at {rate} Hz (sox {mic} -b 16 -c 1 -r {rate} mic.wav)")
        env["RT_WAV_IN"] = str(mic.resolve())
    if speaker_out is not None:
        if not speaker_out.resolve().parent.is_dir():
            raise ConfigError(f"--speaker-out {speaker_out}: folder {speaker_out.parent} does not exist; create it first")
        env["RT_WAV_OUT"] = str(speaker_out.resolve())
    return env


@click.command(name="exec", context_settings={"ignore_unknown_options": True})
@board_option()
@click.option("--api-url", metavar="URL", default=None,
              help="Calls endpoint instead of OpenAI's (e.g. a local stand-in: https://127.0.0.1:PORT/v1/realtime/"
                   "calls); a 127.0.0.1/localhost URL also makes the firmware offer its 127.0.0.1 ICE candidate.")
@click.option("--ca-file", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="PEM CA the firmware trusts instead of its certificate bundle (linux builds only). TLS stays "
                   "verified: the server's certificate must chain to this CA and name the URL's host.")
@click.option("--mic", type=click.Path(path_type=Path), default=None, metavar="FILE.wav",
              help="Play this 16-bit WAV (at the board's sample rate) as the microphone, then silence.")
@click.option("--speaker-out", type=click.Path(path_type=Path), default=None, metavar="FILE.wav",
              help="Write what the model says (the speaker) to this WAV, in real time.")
@click.option("--relay", "relay_url", metavar="URL", default=None,
              help="Relay mode: set up calls through this `rtflash relay serve` URL with the device token "
                   "($RTFLASH_RELAY_TOKEN, the project's .env, or the secrets file where `provision --board linux "
                   "--relay` stores it); no API key is needed or passed.")
@click.option("--relay-ca", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="PEM CA of the relay's certificate (default: $RTFLASH_RELAY_CA, else the CA stored with the "
                   "token by `provision --board linux --relay --relay-ca`, else the certificate bundle).")
@firmware_option(bake=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def exec_(app: App, board_name, api_url, ca_file, mic, speaker_out, relay_url, relay_ca, args,
          firmware_dir=None) -> None:
    """Run the linux build of the firmware, the API key passed as OPENAI_API_KEY (or, with --relay, the
    relay's URL, this device's token and the relay's CA, and no key at all).

    The key is found like every credential: environment, the project's .env, the secrets file
    (`rtflash secrets set --api-key ...`), the keyring. A 127.0.0.1/localhost URL also makes the firmware
    offer its ICE candidate on `lo`."""
    from rtflash import credentials
    from rtflash.errors import ConfigError

    board = app.board(board_name or "linux")
    if not board.is_linux:
        raise ConfigError(f"board {board.name} is {board.chip}; exec runs linux builds: use `rtflash flash` "
                          "and `rtflash monitor` for hardware")
    if firmware_dir is not None or app.firmware is None:
        app.use_firmware(firmware_dir, sources=False)
    build_dir = app.build_dir(board.name)
    try:
        elf = json.loads((build_dir / "project_description.json").read_text())["app_elf"]
    except (OSError, ValueError, KeyError):
        more = f" --firmware {app.firmware.source}" if app.firmware is not None else ""
        raise ConfigError(f"no linux build in {build_dir}; run `rtflash build --board {board.name}{more}` first") from None
    if relay_url is not None and api_url is not None:
        raise click.UsageError("--relay and --api-url exclude each other: the relay chooses the upstream")
    if relay_ca is not None and relay_url is None:
        raise click.UsageError("--relay-ca goes with --relay URL")
    extra = _exec_env(api_url, ca_file, mic, speaker_out, board.audio.sample_rate)
    from rtflash import proc

    if relay_url is not None:  # the key stays on the relay: none is looked up, none inherited
        extra.update(_relay_env(relay_url, relay_ca, app.project_dir))
        code = proc.interactive([build_dir / elf, *args], env=extra, unset=KEY_ENVS)
    else:
        found = credentials.resolve({}, app.project_dir, names=("openai_api_key",))
        code = proc.interactive([build_dir / elf, *args], env={**extra, "OPENAI_API_KEY": found["openai_api_key"].value},
                                unset=("RTFLASH_RELAY_URL", RELAY_TOKEN_ENV))
    if code:
        raise click.exceptions.Exit(code)
