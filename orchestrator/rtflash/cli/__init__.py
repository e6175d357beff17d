"""The `rtflash` command line: the only layer that imports click, prints for people and exits.

Sub-commands live one module each in this package and are imported only when invoked, so that
`rtflash --help` stays fast (rich, jinja2 and esptool are never imported at start-up). Library
errors (`RtflashError`) become one red line and a non-zero exit; tracebacks only with --verbose,
and always redacted.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from rtflash import __version__

# name -> (module under rtflash.cli, attribute, one-line help shown by `rtflash --help`).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "boards": ("boards", "boards", "List the boards rtflash knows, or show one."),
    "render": ("render", "render", "Render a board's sdkconfig.defaults, partitions and platformio.ini."),
    "check": ("render", "check", "Check a board's rendered config against Kconfig with kconfgen."),
    "build": ("build", "build", "Render and build the firmware for a board (idf.py or pio)."),
    "exec": ("build", "exec_", "Run the linux build of the firmware with the API key (env, .env, secrets file)."),
    "secrets": ("secrets", "secrets", "Store, show (redacted) or clear the Wi-Fi and API credentials."),
    "nvs": ("secrets", "nvs", "Inspect NVS partition images (nvs show FILE)."),
    "provision": ("provision", "provision", "Write Wi-Fi and API credentials to the device's NVS partition."),
    "run": ("run", "run", "Render, build, flash and monitor a board in one (each stage shown)."),
    "flash": ("flash", "flash", "Write the last build and the credentials to devices (fast reflash, parallel)."),
    "erase": ("flash", "erase", "Erase a device's flash, all of it or one region."),
    "ports": ("flash", "ports", "List serial ports with USB ids and the bridge chip."),
    "monitor": ("monitor", "monitor", "Watch the device's serial log: colours, filters, decoded panics, reconnects."),
    "ci": ("ci", "ci", "Build boards secret-free into dist/ for CI; --matrix prints the job matrix."),
    "web": ("web", "web", "Serve dist/ (the install page of `rtflash ci --web`) on 127.0.0.1 for a look."),
    "doctor": ("ci", "doctor", "Check this machine's set-up: ESP-IDF, toolchains, ports, deps, credentials."),
    "deps": ("deps", "deps", "Show, check or fetch the firmware's pinned third-party code (deps.toml)."),
    "relay": ("relay", "relay", "Serve devices without the API key on them: relay serve|enroll|devices|revoke."),
}

_state = {"verbose": False}


@dataclass
class App:
    """What every command needs: where the project is, and lazily its settings and board catalog."""

    project_dir: Path
    boards_dir: Path | None = None
    verbose: bool = False
    _settings: object = field(default=None, repr=False)
    _catalog: object = field(default=None, repr=False)
    firmware: object = None  # rtflash.external.ExternalFirmware once use_firmware found one (--firmware DIR)

    @property
    def settings(self):
        if self._settings is None:
            from rtflash.settings import load_settings

            self._settings = load_settings(self.project_dir)
        return self._settings

    @property
    def catalog(self):
        if self._catalog is None:
            from rtflash.boards import load_catalog

            extra = self.boards_dir or self.settings.boards_dir
            self._catalog = load_catalog(extra)
        return self._catalog

    def board(self, name: str | None):
        """The named board, or the project's default board."""
        from rtflash.errors import ConfigError

        name = name or self.settings.board
        if not name:
            raise ConfigError("no board given: pass --board NAME (see `rtflash boards`) "
                              "or set board = \"NAME\" in rtflash.toml")
        return self.catalog.get(name)

    def build_dir(self, board_name: str) -> Path:
        if self.firmware is not None:
            return self.project_dir / "build" / f"{board_name}-{self.firmware.name}"
        return self.project_dir / "build" / board_name

    def use_firmware(self, given: Path | None, deps_dir: Path | None = None, sources: bool = True):
        """--firmware DIR, else `[firmware] path` in rtflash.toml, else None (firmware-src); checked.
        `deps_dir` (--deps-dir) may fill DIR's empty submodules, each verified by commit; `sources` False
        for commands that use only DIR's build (flash, exec)."""
        folder = given or self.settings.firmware
        if not folder:
            return None
        from rtflash.external import inspect

        self.firmware = inspect(folder, deps_dir, sources)
        return self.firmware


pass_app = click.make_pass_decorator(App)


def json_errors(fn):
    """With --json (`as_json`), a failure still prints one JSON object on stdout, {"ok": false, "error":
    ...}, so a script reading stdout always gets JSON; the error line on stderr and the exit code stay."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not kwargs.get("as_json"):
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            from rtflash import console
            from rtflash.errors import RtflashError

            known = isinstance(exc, RtflashError)
            message = str(exc) or type(exc).__name__
            console.emit_json({"ok": False, "error": message if known else f"internal error: {message}",
                               "kind": type(exc).__name__, "exit_code": exc.exit_code if known else 70})
            raise

    return wrapper


def complete_board(ctx, param, incomplete):
    """Shell completion for --board: the shipped board names (user boards once loaded)."""
    from rtflash.resources import boards_dir

    return [p.stem for p in sorted(boards_dir().glob("*.toml")) if p.stem.startswith(incomplete)]


def firmware_option(bake: bool = True):
    """--firmware DIR (and --bake-secrets): build a user's ESP-IDF project instead of firmware-src."""
    def decorate(f):
        if bake:
            f = click.option("--bake-secrets", is_flag=True,
                             help="With --firmware DIR of the OpenAI Realtime SDK: let its CMake compile WIFI_SSID, "
                                  "WIFI_PASSWORD and OPENAI_API_KEY (from `rtflash secrets`) into the binary.")(f)
        return click.option("--firmware", "firmware_dir", type=click.Path(path_type=Path), default=None,
                            metavar="DIR", help="Build this ESP-IDF project (e.g. a clone of openai-realtime-"
                            "embedded-sdk) out of tree instead of rtflash's firmware (default: [firmware] path "
                            "in rtflash.toml).")(f)
    return decorate


def board_option(required: bool = False):
    return click.option("--board", "-b", "board_name", metavar="NAME", required=required,
                        shell_complete=complete_board,
                        help="Board name (default: `board` in rtflash.toml).")


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module = importlib.import_module(f"rtflash.cli.{entry[0]}")
        return getattr(module, entry[1])

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name and name not in COMMANDS and not name.startswith("-"):
            import difflib

            near = difflib.get_close_matches(name, COMMANDS, n=1)
            hint = f"; did you mean `{near[0]}`?" if near else "; see `rtflash --help`"
            ctx.fail(f"no such command '{name}'{hint}")
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="rtflash")
@click.option("-v", "--verbose", is_flag=True, help="More output, and tracebacks on errors.")
@click.option("--boards-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Extra directory of board files (overrides `boards_dir` in rtflash.toml).")
@click.option("-C", "--project", "project_dir", type=click.Path(file_okay=False, path_type=Path),
              default=".", metavar="DIR", help="Project directory (rtflash.toml, build/). Default: .")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, boards_dir: Path | None, project_dir: Path) -> None:
    """rtflash: build, configure, flash and watch realtime voice firmware on ESP32-S3 boards.

    Shell completion: eval "$(_RTFLASH_COMPLETE=bash_source rtflash)" (zsh_source, fish_source).
    """
    from rtflash.resources import use_project

    _state["verbose"] = verbose
    if not project_dir.is_dir():
        from rtflash.errors import ConfigError

        what = "is not a directory" if project_dir.exists() else "does not exist"
        raise ConfigError(f"-C {project_dir}: {what}; give the project folder (where rtflash.toml and build/ "
                          "live), or create it first")
    ctx.obj = App(project_dir=project_dir.resolve(), boards_dir=boards_dir, verbose=verbose)
    use_project(ctx.obj.project_dir)


GROUP_OPTIONS = {"--boards-dir": "--boards-dir DIR", "-C": "-C DIR", "--project": "--project DIR",
                 "-v": "-v", "--verbose": "--verbose"}


def _on_sigterm(signum, frame) -> None:
    from rtflash.errors import Terminated

    raise Terminated()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the group and turn every error into one line and an exit code."""
    import signal

    from rtflash.errors import RtflashError, Terminated

    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)  # like Ctrl-C: cleanups run, then one line, exit 143
    try:
        rv = cli.main(args=argv, prog_name="rtflash", standalone_mode=False)
    except RtflashError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, Terminated):  # click turns a KeyboardInterrupt into Abort
            _stderr("error: terminated (SIGTERM)")
            sys.exit(Terminated.exit_code)
        _stderr("aborted")
        sys.exit(130)
    except click.NoSuchOption as exc:
        _no_such_option(exc)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Terminated:
        _stderr("error: terminated (SIGTERM)")
        sys.exit(Terminated.exit_code)
    except KeyboardInterrupt:
        _stderr("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    except Exception as exc:  # noqa: BLE001 - last line of defence: never a raw traceback
        _report(exc, internal=True)
        sys.exit(70)
    sys.exit(rv if isinstance(rv, int) else 0)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _no_such_option(exc: click.NoSuchOption) -> None:
    """An option of rtflash itself given after the command: say where it goes (click suggests a
    look-alike option of the command instead, e.g. --board for --boards-dir)."""
    if exc.option_name in GROUP_OPTIONS and exc.ctx is not None and exc.ctx.parent is not None:
        command = exc.ctx.info_name
        usage = click.UsageError(f"{exc.option_name} is an option of rtflash itself, not of its {command} command: "
                                 f"put it before the command (rtflash {GROUP_OPTIONS[exc.option_name]} "
                                 f"{command} ...)", ctx=exc.ctx)
        usage.show()
        sys.exit(usage.exit_code)
    exc.show()
    sys.exit(exc.exit_code)


def _report(exc: BaseException, internal: bool = False) -> None:
    from rtflash import console
    from rtflash.redact import redact

    if _state["verbose"] or os.environ.get("RTFLASH_TRACEBACK"):
        import traceback

        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    message = str(exc) or type(exc).__name__
    if internal:
        message = f"internal error: {type(exc).__name__}: {message} (run with --verbose for the traceback)"
    for line in getattr(exc, "lines", None) or (message,):  # several problems: one line each
        console.error(line)


def _stderr(text: str) -> None:
    sys.stderr.write(text + "\n")
