"""Project settings from `rtflash.toml`: defaults for options, and the non-secret session settings.

Secrets never live here (the file is usually committed): a secret-looking key is refused with a
pointer to `rtflash secrets set`.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rtflash.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FILENAME = "rtflash.toml"
BACKENDS = ("auto", "idf", "pio")
DEFAULT_API_URL = "https://api.openai.com/v1/realtime/calls"
_SECRET_KEYS = {"wifi_password", "password", "api_key", "openai_api_key", "key", "token"}


@dataclass(frozen=True)
class Settings:
    """Everything rtflash.toml may set. Command-line options override these."""

    board: str = ""
    backend: str = "auto"
    port: str = "auto"
    baud: int = 921600
    monitor_baud: int = 115200
    boards_dir: str = ""
    model: str = "gpt-realtime"
    voice: str = "alloy"
    instructions: str = "You are a helpful, concise voice assistant."
    api_url: str = DEFAULT_API_URL
    firmware: str = ""  # [firmware] path = "DIR": build that ESP-IDF project (rtflash.external), resolved
    relay: dict = field(default_factory=dict, compare=False)  # [relay.boards|devices.NAME] (rtflash.relay.config)
    security: dict = field(default_factory=dict, compare=False)  # [security] and [security.boards.NAME]
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_settings(project_dir: Path) -> Settings:
    """Read `<project_dir>/rtflash.toml` if it exists; missing file means defaults."""
    path = Path(project_dir) / FILENAME
    if not path.is_file():
        return Settings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}; fix the syntax at that line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_settings(raw, path)


def parse_firmware_table(value: Any, path: Path) -> str:
    """`[firmware]` with `path = "DIR"` (relative to rtflash.toml): the project --firmware builds."""
    if not isinstance(value, dict):
        raise ConfigError(f'{path}: firmware: must be a table, [firmware] with path = "DIR"')
    unknown = sorted(set(value) - {"path"})
    if unknown:
        raise ConfigError(f"{path}: firmware.{unknown[0]}: unknown setting; allowed: path")
    folder = value.get("path", "")
    if not isinstance(folder, str) or not folder:
        raise ConfigError(f'{path}: firmware.path: must be a non-empty string (in quotes), e.g. path = "../sdk"')
    return str((path.parent / Path(folder).expanduser()).resolve())


def parse_settings(raw: dict[str, Any], path: Path) -> Settings:
    known = {f.name: f.type for f in fields(Settings) if f.name != "path"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key.lower() in _SECRET_KEYS or "password" in key.lower():
            raise ConfigError(f"{path}: {key}: secrets do not belong in {FILENAME} (it gets committed); "
                              "remove it and use `rtflash secrets set` or environment variables")
        if key == "firmware":
            values["firmware"] = parse_firmware_table(value, path)
            continue
        if key == "relay":
            from rtflash.relay.config import parse_relay_table

            values["relay"] = parse_relay_table(value, path)
            continue
        if key == "security":
            values["security"] = parse_security(value, path)
            continue
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"allowed: {', '.join(known)}"
            raise ConfigError(f"{path}: {key}: unknown setting; {hint}")
        want = int if known[key] in (int, "int") else str
        if not isinstance(value, want) or isinstance(value, bool):
            kind = "a whole number (no quotes)" if want is int else "a string (in quotes)"
            raise ConfigError(f"{path}: {key}: must be {kind}, not {type(value).__name__}")
        values[key] = value
    if values.get("backend", "auto") not in BACKENDS:
        raise ConfigError(f"{path}: backend: {values['backend']!r} is not one of {', '.join(BACKENDS)}")
    for key in ("baud", "monitor_baud"):
        if key in values and not 9600 <= values[key] <= 5_000_000:
            raise ConfigError(f"{path}: {key}: {values[key]} is not a usable baud rate (9600-5000000)")
    if values.get("boards_dir"):
        values["boards_dir"] = str((path.parent / values["boards_dir"]).resolve())
    return Settings(**values, path=str(path))


NVS_ENCRYPTION = ("none", "hmac")
_SECURITY_KEYS = {"nvs_encryption": str, "nvs_hmac_key_block": int}


def _security_entry(table: Any, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where}: must be a table")
    out = {}
    for key, value in table.items():
        if key not in _SECURITY_KEYS:
            raise ConfigError(f"{path}: {where}.{key}: unknown setting; allowed: {', '.join(_SECURITY_KEYS)}")
        if not isinstance(value, _SECURITY_KEYS[key]) or isinstance(value, bool):
            raise ConfigError(f"{path}: {where}.{key}: must be "
                              f"{'a whole number (no quotes)' if _SECURITY_KEYS[key] is int else 'a string (in quotes)'}")
        out[key] = value
    if out.get("nvs_encryption", "none") not in NVS_ENCRYPTION:
        raise ConfigError(f"{path}: {where}.nvs_encryption: {out['nvs_encryption']!r} is not one of "
                          f"{', '.join(NVS_ENCRYPTION)}")
    if not 0 <= out.get("nvs_hmac_key_block", 0) <= 5:
        raise ConfigError(f"{path}: {where}.nvs_hmac_key_block: {out['nvs_hmac_key_block']} is not an eFuse key "
                          "block of the ESP32-S3 (0-5)")
    return out


def parse_security(table: Any, path: Path) -> dict[str, Any]:
    """[security] nvs_encryption = "none" | "hmac", nvs_hmac_key_block = 0-5, and the same per board
    under [security.boards.NAME] (a board's own entry wins)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: security: must be a table")
    boards = table.get("boards", {})
    out = _security_entry({k: v for k, v in table.items() if k != "boards"}, "security", path)
    if not isinstance(boards, dict):
        raise ConfigError(f"{path}: security.boards: must be a table of [security.boards.NAME]")
    out["boards"] = {name: _security_entry(entry, f"security.boards.{name}", path) for name, entry in boards.items()}
    return out


@dataclass(frozen=True)
class Security:
    nvs_encryption: str = "none"
    nvs_hmac_key_block: int = 0

    @property
    def hmac(self) -> bool:
        return self.nvs_encryption == "hmac"


def security_for(settings: Settings, board: str) -> Security:
    """The board's NVS security settings: its [security.boards.NAME] over [security] over the defaults."""
    top = {k: v for k, v in settings.security.items() if k != "boards"}
    return Security(**{**top, **settings.security.get("boards", {}).get(board, {})})
