"""Wi-Fi and API credentials: where they come from, whether they are sane, and where they are stored.

The firmware holds no secret: these values only ever go to the device's NVS partition (nvs.py).
Sources, first wins: command-line options, environment (RTFLASH_* then the upstream SDK's names),
the project's `.env`, the secrets file (refused unless mode 0600), the system keyring when the
`keyring` package is installed, and last an interactive hidden prompt that the CLI passes in.
Every value resolved is registered with the redaction helper before anything else sees it.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rtflash import redact
from rtflash.errors import CredentialError
from rtflash.files import write_atomic
from rtflash.nvs import MAX_STRING

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

KEYRING_SERVICE = "rtflash"
MAX_KEY_BYTES = MAX_STRING  # what provision can write: `secrets set` refuses what provision would refuse


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    option: str
    env: tuple[str, ...]


FIELDS = (
    Field("wifi_ssid", "Wi-Fi SSID", "--wifi-ssid", ("RTFLASH_WIFI_SSID", "WIFI_SSID")),
    Field("wifi_password", "Wi-Fi password", "--wifi-password", ("RTFLASH_WIFI_PASSWORD", "WIFI_PASSWORD")),
    Field("openai_api_key", "OpenAI API key", "--api-key", ("RTFLASH_OPENAI_API_KEY", "OPENAI_API_KEY")),
)
BY_NAME = {f.name: f for f in FIELDS}
SECRET_NAMES = ("wifi_password", "openai_api_key")
# Relay mode's settings for the linux firmware, stored by `provision --board linux --relay` and read by
# `exec --relay` (the relay URL they belong to, the device token, the relay's CA as base64 DER). Kept apart
# from FIELDS: no device needs them, so doctor/provision never ask for them.
RELAY_KEYS = ("relay_url", "relay_token", "relay_ca")


@dataclass(frozen=True)
class Credential:
    name: str
    value: str
    source: str  # where it came from, for messages: never the value


def secrets_path(env: Mapping[str, str] | None = None) -> Path:
    from rtflash.resources import user_path

    return user_path("config", "secrets.toml", "RTFLASH_SECRETS_FILE", env)


_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_dotenv(path: Path) -> dict[str, tuple[str, int]]:
    """KEY=VALUE lines (optional `export`, quotes, # comments) -> {KEY: (value, line)}."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialError(f"{path}: cannot read .env file ({exc.__class__.__name__}); fix its permissions "
                              "or encoding, or remove it") from None
    found = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not _ENV_KEY.fullmatch(key):  # never quote the line: it may hold a secret
            raise CredentialError(f"{path}:{number}: not a KEY=VALUE line; fix it (e.g. WIFI_SSID=MyNet) or "
                                  "comment it out with #")
        if value[:1] in ("'", '"'):
            if len(value) < 2 or value[-1] != value[0]:
                raise CredentialError(f"{path}:{number} ({key}): the quote {value[0]} is never closed; close it "
                                      "at the end of the line")
            value = value[1:-1]
        found[key] = (value, number)
    return found


def read_secrets_file(path: Path) -> dict[str, str]:
    """The TOML secrets file; refused when group or others can read it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialError(f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
                              f"run: chmod 600 {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CredentialError(f"{path}: unreadable secrets file ({exc.__class__.__name__}); fix or delete it") from None
    unknown = set(data) - set(BY_NAME) - set(RELAY_KEYS)
    if unknown:
        raise CredentialError(f"{path}: unknown key {sorted(unknown)[0]!r}; allowed: "
                              f"{', '.join((*BY_NAME, *RELAY_KEYS))}")
    if "relay_token" in data:
        redact.register(str(data["relay_token"]))
    return {k: str(v) for k, v in data.items()}


def _keyring_get(name: str) -> str | None:
    try:
        import keyring
    except ImportError:
        return None
    try:
        return keyring.get_password(KEYRING_SERVICE, name)
    except Exception:  # noqa: BLE001 - a broken keyring backend is just a missing source
        return None


def resolve(options: Mapping[str, str | None], project_dir: Path, names: tuple[str, ...] = tuple(BY_NAME),
            env: Mapping[str, str] | None = None, prompt: Callable[[Field], str] | None = None,
            required: bool = True) -> dict[str, Credential]:
    """Find each credential in `names`, first source wins; validate; register secrets for redaction."""
    env = os.environ if env is None else env
    dotenv_path = Path(project_dir) / ".env"
    dotenv = read_dotenv(dotenv_path)
    store = secrets_path(env)
    stored = read_secrets_file(store)
    found: dict[str, Credential] = {}
    for name in names:
        f = BY_NAME[name]
        cred = _first_source(f, options, env, dotenv, dotenv_path, stored, store)
        if cred is None and prompt is not None:
            cred = Credential(name, prompt(f), "prompt")
        if cred is None:
            if required:
                raise CredentialError(missing_message(f, with_option=name in options))
            continue
        if name in SECRET_NAMES:
            redact.register(cred.value)
        validate(cred)
        found[name] = cred
    return found


def _first_source(f: Field, options, env, dotenv, dotenv_path, stored, store) -> Credential | None:
    if options.get(f.name) is not None:
        return Credential(f.name, str(options[f.name]), f.option)
    for var in f.env:
        if var in env:
            return Credential(f.name, env[var], f"environment {var}")
    for var in f.env:
        if var in dotenv:
            value, line = dotenv[var]
            return Credential(f.name, value, f"{dotenv_path}:{line} ({var})")
    if f.name in stored:
        return Credential(f.name, stored[f.name], f"secrets file {store}")
    value = _keyring_get(f.name)
    if value is not None:
        return Credential(f.name, value, "system keyring")
    return None


def missing_message(f: Field, with_option: bool = True) -> str:
    """The fix for a missing credential; `--option` only where the command has it (options names it)."""
    option = f"pass {f.option}, " if with_option else ""
    return (f"{f.label} is not set: export {f.env[0]} (or {f.env[1]}), {option}"
            f"or run `rtflash secrets set {f.option} ...`")


def validate(cred: Credential) -> None:
    """Shape checks; the message names the credential and its source, never the value."""
    f, value, where = BY_NAME[cred.name], cred.value, cred.source
    if cred.name == "wifi_ssid":
        size = len(value.encode("utf-8"))
        if not 1 <= size <= 32:
            raise CredentialError(f"{f.label} from {where} is {size} bytes; an SSID has 1-32 bytes (UTF-8)")
    elif cred.name == "wifi_password":
        if value == "":
            return  # open network
        if not all(0x20 <= ord(c) <= 0x7E for c in value):
            raise CredentialError(f"{f.label} from {where} has non-ASCII or control characters; WPA2 "
                                  "passphrases are printable ASCII")
        is_psk = len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)
        if not (8 <= len(value) <= 63 or is_psk):
            also = ", or exactly 64 hex digits (the raw PSK)" if len(value) == 64 else ""
            raise CredentialError(f"{f.label} from {where} is {len(value)} characters; WPA2 needs 8-63{also} "
                                  "(or empty for an open network)")
    elif cred.name == "openai_api_key":
        if not value.startswith("sk-") or len(value) < 20 or any(c.isspace() for c in value):
            raise CredentialError(f"{f.label} from {where} does not look like an OpenAI key (sk-..., "
                                  "no spaces); copy it again from platform.openai.com")
        if not value.isascii() or not value.isprintable():
            raise CredentialError(f"{f.label} from {where} has non-ASCII or control characters; copy it again "
                                  "from platform.openai.com")
        if len(value) > MAX_KEY_BYTES:
            raise CredentialError(f"{f.label} from {where} is {len(value)} bytes; the device's NVS holds at most "
                                  f"{MAX_KEY_BYTES} (OpenAI keys are about 200): copy the key alone, once")


def store_secrets(values: Mapping[str, str], env: Mapping[str, str] | None = None) -> Path:
    """Merge values into the secrets file, written 0600 through a temp file."""
    path = secrets_path(env)
    current = read_secrets_file(path)
    for name, value in values.items():
        validate(Credential(name, value, "the value given"))
        current[name] = value
    write_atomic(path, "".join(f"{k} = {_toml_string(v)}\n" for k, v in current.items()), mode=0o600)
    return path


def store_relay(url: str, token: str, ca: str = "", env: Mapping[str, str] | None = None) -> Path:
    """Keep relay mode's settings (one relay) in the secrets file, 0600, replacing any earlier ones: what
    `exec --relay URL` reads when $RTFLASH_RELAY_TOKEN is not set. `ca`: base64 DER, or "" for none."""
    path = secrets_path(env)
    current = {k: v for k, v in read_secrets_file(path).items() if k not in RELAY_KEYS}
    current.update({"relay_url": url, "relay_token": token, **({"relay_ca": ca} if ca else {})})
    write_atomic(path, "".join(f"{k} = {_toml_string(v)}\n" for k, v in current.items()), mode=0o600)
    return path


def stored_relay(env: Mapping[str, str] | None = None) -> tuple[dict[str, str], Path]:
    """Relay mode's settings from the secrets file ({} when none) and the file's path."""
    path = secrets_path(env)
    return {k: v for k, v in read_secrets_file(path).items() if k in RELAY_KEYS}, path


def clear_secrets(names: tuple[str, ...], env: Mapping[str, str] | None = None) -> Path:
    path = secrets_path(env)
    current = {k: v for k, v in read_secrets_file(path).items() if k not in names}
    write_atomic(path, "".join(f"{k} = {_toml_string(v)}\n" for k, v in current.items()), mode=0o600)
    return path


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'


def doctor_check(project_dir: Path):
    """For `rtflash doctor`: which credentials are present (never their values)."""
    from rtflash.doctor import FAIL, OK, WARN, Check

    try:
        found = resolve({}, project_dir, required=False)
    except CredentialError as exc:
        return Check("credentials", FAIL, str(exc))
    missing = [BY_NAME[n].label for n in BY_NAME if n not in found]
    if missing:
        return Check("credentials", WARN, "missing: " + ", ".join(missing), "rtflash secrets set")
    return Check("credentials", OK, "; ".join(f"{BY_NAME[n].label} from {c.source}" for n, c in found.items()))
