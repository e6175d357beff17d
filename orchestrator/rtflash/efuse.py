"""NVS encryption keyed by the ESP32-S3 HMAC peripheral: the device's HMAC key and its eFuse key block.

Why: the NVS partition holds the Wi-Fi password and the API key or relay token; anyone holding the
board can dump its flash. ESP-IDF's HMAC scheme (CONFIG_NVS_SEC_KEY_PROTECT_USING_HMAC) derives the
NVS XTS keys at boot from a 256-bit key burned in an eFuse key block with purpose HMAC_UP, read-
protected (software never sees it), no flash encryption needed. esp-idf-nvs-partition-gen derives the
same XTS keys from the same HMAC key on the host (nvs.image(hmac_key=...)).

The key is made here, one per device, kept 0600 in rtflash's state dir named by the device's MAC
(never in build/, dist/ or a log), and burned through espefuse's Python API (the esptool package).
A burn is irreversible: plan() decides first (reuse, burn, or refuse), burn() only does what it said.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rtflash.errors import ConfigError, FlashError

HMAC_UP = "HMAC_UP"
KEY_BLOCKS = 6   # BLOCK_KEY0..5 (ESP32-S3)


def keys_dir(env: Mapping[str, str] | None = None) -> Path:
    """$RTFLASH_KEYS_DIR, else $XDG_STATE_HOME/rtflash/nvs-keys, else ~/.local/state/rtflash/nvs-keys."""
    env = os.environ if env is None else env
    if env.get("RTFLASH_KEYS_DIR"):
        return Path(env["RTFLASH_KEYS_DIR"]).expanduser()
    base = Path(env["XDG_STATE_HOME"]).expanduser() if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "rtflash" / "nvs-keys"


def key_path(mac: str, env: Mapping[str, str] | None = None) -> Path:
    return keys_dir(env) / f"hmac-{mac.replace(':', '').lower()}.bin"


def load_key(mac: str, env: Mapping[str, str] | None = None) -> bytes | None:
    path = key_path(mac, env)
    if not path.is_file():
        return None
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path}: the device key is readable by others; `chmod 600 {path}`")
    data = path.read_bytes()
    if len(data) != 32:
        raise ConfigError(f"{path}: {len(data)} bytes, an HMAC key is 32; restore it from your backup")
    return data


def save_key(mac: str, key: bytes, env: Mapping[str, str] | None = None) -> Path:
    """Written (0600, atomically; its folder 0700) before anything is burned: a burned key never lost."""
    from rtflash.files import write_atomic

    path = key_path(mac, env)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, key, mode=0o600)
    return path


@dataclass(frozen=True)
class Plan:
    """What provisioning will do on this device: `burn` False means the key is already in `block`."""

    mac: str
    block: int
    key: bytes
    burn: bool
    path: Path

    @property
    def block_name(self) -> str:
        return f"BLOCK_KEY{self.block}"


@dataclass(frozen=True)
class KeyBlock:
    """One eFuse key block as espefuse reads it."""

    index: int
    purpose: str
    empty: bool          # all zeros and readable (an HMAC key reads as zeros: read-protected)
    readable: bool
    writeable: bool

    @property
    def free(self) -> bool:
        return self.purpose == "USER" and self.empty and self.readable and self.writeable


def read_blocks(efuses) -> list[KeyBlock]:
    out = []
    for i in range(KEY_BLOCKS):
        block = efuses[f"BLOCK_KEY{i}"]
        raw = block.get_raw()
        out.append(KeyBlock(i, str(efuses[f"KEY_PURPOSE_{i}"].get()), not any(raw), block.is_readable(),
                            block.is_writeable()))
    return out


def plan(mac: str, blocks: list[KeyBlock], wanted: int, env: Mapping[str, str] | None = None) -> Plan:
    """Reuse the key this machine holds for `mac` if the chip has an HMAC_UP block; else burn into
    block `wanted` (the board's CONFIG_NVS_SEC_HMAC_EFUSE_KEY_ID), which must be free; else refuse."""
    key = load_key(mac, env)
    path = key_path(mac, env)
    hmac = [b for b in blocks if b.purpose == HMAC_UP]
    if hmac and key is not None:
        if hmac[0].index != wanted:
            raise ConfigError(f"device {mac}: its HMAC key is in BLOCK_KEY{hmac[0].index}, the board's firmware "
                              f"reads BLOCK_KEY{wanted}: set nvs_hmac_key_block = {hmac[0].index} for the board")
        return Plan(mac, wanted, key, False, path)
    if hmac:
        raise ConfigError(f"device {mac}: BLOCK_KEY{hmac[0].index} already holds an HMAC key that this machine "
                          f"does not have ({path} missing): copy that file from where it was provisioned; "
                          "nothing burned")
    block = blocks[wanted]
    if not block.free:
        why = (f"has purpose {block.purpose}" if block.purpose != "USER" else
               "is not empty" if not block.empty else "is read- or write-protected")
        raise ConfigError(f"device {mac}: eFuse BLOCK_KEY{wanted} {why}; it cannot take the NVS key. Pick a free "
                          f"block with nvs_hmac_key_block (free: "
                          f"{', '.join(f'BLOCK_KEY{b.index}' for b in blocks if b.free) or 'none'}); nothing burned")
    if key is None:
        key = secrets.token_bytes(32)
        save_key(mac, key, env)
    return Plan(mac, wanted, key, True, path)


def connect(port: str, before: str = "default-reset", on_line: Callable[[str], None] | None = None):
    """espefuse's command object for the chip on `port` (its log lines go to `on_line`)."""
    import espefuse
    import esptool

    from rtflash import esptool_log

    with esptool_log.sinks(None, on_line):
        try:
            return espefuse.init_commands(port=port, before=before, chip="esp32s3", do_not_confirm=True)
        except (esptool.FatalError, OSError, ValueError) as exc:  # serial errors are OSErrors: one line
            raise FlashError(f"{port}: cannot read the eFuses ({str(exc).splitlines()[0] if str(exc) else exc!r})") \
                from None


def device_mac(commands) -> str:
    return ":".join(f"{b:02x}" for b in commands.esp.read_mac())


def burn(commands, p: Plan, on_line: Callable[[str], None] | None = None) -> None:
    """Burn the plan's key into its block with purpose HMAC_UP (espefuse read- and write-protects it)."""
    import esptool

    from rtflash import esptool_log

    with esptool_log.sinks(None, on_line):
        try:
            commands.burn_key([p.block_name], [io.BytesIO(p.key)], [HMAC_UP])
        except (esptool.FatalError, OSError) as exc:
            raise FlashError(f"burning {p.block_name} failed: {str(exc).splitlines()[0] if str(exc) else exc!r}") \
                from None
    after = read_blocks(commands.efuses)[p.block]
    if after.purpose != HMAC_UP or after.readable:
        raise FlashError(f"{p.block_name} reads back as {after.purpose} (readable: {after.readable}) after the burn")


def close(commands) -> None:
    port = getattr(commands.esp, "_port", None)
    if port is not None:
        port.close()
