"""The session a relay gives each device: rtflash.toml's model/voice/instructions, per board, per device.

rtflash.toml:

    model = "gpt-realtime"            # the defaults, as for direct-key devices
    voice = "alloy"
    [relay.boards.esp32-s3-box-3]     # every device enrolled with that board
    voice = "marin"
    [relay.devices.kitchen]           # one device (wins over its board)
    instructions = "Answer in one sentence."
    [relay]
    store = "postgresql://relay@db.lan/rtflash"   # the relay's store (default: a SQLite file; store.py)

Why in the relay: with the unified interface the server, not the device, sets up the session, so a
device cannot pick a costlier model or other instructions; the device's own query parameters are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtflash.errors import ConfigError

SESSION_KEYS = ("model", "voice", "instructions")
SECTIONS = ("boards", "devices")


def parse_relay_table(raw: Any, path: Path) -> dict[str, Any]:
    """Validate rtflash.toml's [relay] table: {boards|devices: {name: {model|voice|instructions: str}}}
    and an optional `store` (a path or postgresql:// URL; better in $RTFLASH_RELAY_STORE when it holds a
    password, as rtflash.toml is usually committed)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: relay: must be a table ([relay.devices.NAME] or [relay.boards.NAME])")
    out: dict[str, Any] = {s: {} for s in SECTIONS}
    for section, entries in raw.items():
        if section == "store":
            if not isinstance(entries, str) or not entries.strip():
                raise ConfigError(f"{path}: relay.store: must be a path or a postgresql:// URL (in quotes)")
            out["store"] = entries.strip()
            continue
        if section not in SECTIONS:
            raise ConfigError(f"{path}: relay.{section}: unknown; use [relay.boards.NAME], [relay.devices.NAME] "
                              "or relay.store")
        if not isinstance(entries, dict):
            raise ConfigError(f"{path}: relay.{section}: must be a table of {section[:-1]} names")
        for name, values in entries.items():
            where = f"{path}: relay.{section}.{name}"
            if not isinstance(values, dict):
                raise ConfigError(f"{where}: must be a table with {', '.join(SESSION_KEYS)}")
            for key, value in values.items():
                if key not in SESSION_KEYS:
                    raise ConfigError(f"{where}.{key}: unknown; allowed: {', '.join(SESSION_KEYS)}")
                if not isinstance(value, str) or not value.strip():
                    raise ConfigError(f"{where}.{key}: must be a non-empty string (in quotes)")
            out[section][name] = dict(values)
    return out


def session_values(settings: Any, device: str, board: str) -> dict[str, str]:
    """model/voice/instructions for one device: defaults < its board's table < its own table."""
    values = {key: str(getattr(settings, key)) for key in SESSION_KEYS}
    table = getattr(settings, "relay", None) or {}
    values.update(table.get("boards", {}).get(board, {}) if board else {})
    values.update(table.get("devices", {}).get(device, {}))
    return values


def session_object(values: dict[str, str]) -> dict[str, Any]:
    """The Realtime API's session object (GA shape) sent as the `session` part of the create-call form."""
    return {"type": "realtime", "model": values["model"], "instructions": values["instructions"],
            "audio": {"output": {"voice": values["voice"]}}}
