"""Credentials partition: render the NVS CSV, build `nvs.bin` with Espressif's generator, read it back.

The CSV holds secrets, so it only ever exists in a private 0700 temp dir, as a 0600 file, removed
as soon as the generator is done; the image is flashed from memory (or saved 0600 by `provision --out`,
never inside build/ or dist/).
The reader follows ESP-IDF's NVS page format (components/nvs_flash, "NVS Partition Format"): 4 KiB
pages, a 32-byte header (state, sequence, version, CRC32 of bytes 4-28), a 32-byte entry-state
bitmap (2 bits per entry), then 126 entries of 32 bytes (namespace index, type, span, chunk index,
CRC32 of bytes 0-4 and 8-32, 16-byte key, 8 bytes of data); strings and blobs continue in `span-1`
raw entries with their own CRC32.
"""

from __future__ import annotations

import csv
import io
import shutil
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from rtflash.errors import ConfigError, CredentialError
from rtflash.files import write_atomic

NAMESPACE = "rtflash"
MAX_KEY = 15
MAX_STRING = 3967  # the generator keeps a string and its header within one page: 124 data entries, NUL included
PAGE, ENTRY, ENTRIES = 4096, 32, 126
# NVS key -> (credential or setting name)
CREDENTIAL_KEYS = {"wifi_ssid": "wifi_ssid", "wifi_pass": "wifi_password", "api_key": "openai_api_key"}
SETTING_KEYS = {"model": "model", "voice": "voice", "instructions": "instructions", "api_url": "api_url"}
# relay mode (`provision --relay`, rtflash.relay): written instead of api_key; the firmware posts its offer to
# relay_url with relay_token as Bearer, trusting relay_ca (base64 of the CA's DER, one line) when set, else
# the certificate bundle
RELAY_KEYS = {"relay_url": "relay URL (--relay)", "relay_token": "relay device token", "relay_ca": "relay CA (--relay-ca)"}
SECRET_KEYS = {"wifi_pass", "api_key", "relay_token"}
_TYPES = {0x01: "u8", 0x11: "i8", 0x02: "u16", 0x12: "i16", 0x04: "u32", 0x14: "i32", 0x08: "u64",
          0x18: "i64", 0x21: "string", 0x41: "blob", 0x42: "blob_data", 0x48: "blob_index"}
_INT_FORMATS = {0x01: "<B", 0x11: "<b", 0x02: "<H", 0x12: "<h", 0x04: "<I", 0x14: "<i", 0x08: "<Q", 0x18: "<q"}


def entries(credentials: dict, settings, relay: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(NVS key, value) pairs for namespace `rtflash`, refusing what NVS cannot hold."""
    pairs = [(key, credentials[name].value) for key, name in CREDENTIAL_KEYS.items() if name in credentials]
    pairs += [(key, str(getattr(settings, name))) for key, name in SETTING_KEYS.items()]
    pairs += [(key, relay[key]) for key in RELAY_KEYS if relay and relay.get(key)]
    for key, value in pairs:
        if len(key) > MAX_KEY:
            raise ConfigError(f"NVS key {key!r} is longer than {MAX_KEY} characters")
        size = len(value.encode("utf-8"))
        if size > MAX_STRING:
            what = (f"setting {SETTING_KEYS[key]!r} in rtflash.toml" if key in SETTING_KEYS
                    else RELAY_KEYS.get(key, f"credential {key}"))
            raise CredentialError(f"{what} is {size} bytes; NVS strings hold at most {MAX_STRING}: shorten it")
    return pairs


def render_csv(pairs: list[tuple[str, str]]) -> str:
    """The generator's CSV (key,type,encoding,value), from templates/nvs.csv.j2 with CSV quoting."""
    from rtflash.render import environment, render_template

    env = environment()
    env.filters["csv"] = _csv_cell
    return render_template(env, "nvs.csv.j2", {"namespace": NAMESPACE, "entries": pairs})


def _csv_cell(value: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([value])
    return buf.getvalue()


def image(pairs: list[tuple[str, str]], size: int, hmac_key: bytes | None = None) -> bytes:
    """The partition image, built with esp-idf-nvs-partition-gen in a private (0700) temp dir.

    With `hmac_key` (the device's eFuse HMAC key, rtflash.efuse): encrypted with the XTS keys the
    tool derives from it (`encrypt --keygen --key_protect_hmac --kp_hmac_inputkey`), as the firmware's
    nvs_sec_provider derives them at boot (CONFIG_NVS_SEC_KEY_PROTECT_USING_HMAC). The key file and
    the derived keys live only in the temp dir, removed before returning."""
    from rtflash import proc

    if size % PAGE or size < 3 * PAGE:
        raise ConfigError(f"nvs partition size {size:#x} must be a multiple of 0x1000 and at least 0x3000")
    tmp = Path(tempfile.mkdtemp(prefix="rtflash-nvs-"))  # mkdtemp makes it 0700
    try:
        source = tmp / "nvs.csv"
        source.touch(mode=0o600)
        source.write_text(render_csv(pairs), encoding="utf-8")
        argv = [sys.executable, "-m", "esp_idf_nvs_partition_gen", "generate", str(source), "nvs.bin", hex(size)]
        if hmac_key is not None:
            keyfile = tmp / "hmac.bin"
            keyfile.touch(mode=0o600)
            keyfile.write_bytes(hmac_key)
            argv[3] = "encrypt"
            argv += ["--keygen", "--keyfile", "xts.bin", "--key_protect_hmac", "--kp_hmac_inputkey", str(keyfile)]
        proc.run([*argv, "--outdir", str(tmp)], cwd=tmp, timeout=120)
        return (tmp / "nvs.bin").read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def generate(pairs: list[tuple[str, str]], size: int, out: Path) -> Path:
    """Write the partition image to `out`, 0600, atomically (for users who flash it themselves)."""
    write_atomic(out, image(pairs, size), mode=0o600)
    return out


@dataclass(frozen=True)
class Item:
    namespace: str
    key: str
    type: str
    value: object
    page: int
    entry: int


@dataclass(frozen=True)
class Image:
    pages: int
    active_pages: int
    items: tuple[Item, ...]
    errors: tuple[str, ...]

    def get(self, namespace: str, key: str):
        return next((i.value for i in self.items if i.namespace == namespace and i.key == key), None)


def _crc(data: bytes) -> int:
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


def printable(text: str) -> str:
    """`text` safe for a terminal: control and other non-printable characters as \\xNN / \\uNNNN escapes
    (an image read from a device or a random file must not drive the terminal)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def read_image(data: bytes) -> Image:
    """Parse an NVS partition image; CRC or structure problems are collected, not fatal, as ESP-IDF
    skips a page whose header CRC fails. Nothing but failing pages: ConfigError (not an NVS image)."""
    if len(data) % PAGE or not data:
        raise ConfigError(f"not an NVS image: its size {len(data)} is not a multiple of {PAGE} bytes; give the "
                          "whole nvs partition (e.g. the file `rtflash provision --out` wrote)")
    raw: list[tuple[int, int, int, int, str, bytes | object]] = []
    errors, active, bad_pages = [], 0, 0
    for page in range(len(data) // PAGE):
        buf = data[page * PAGE:(page + 1) * PAGE]
        state, = struct.unpack_from("<I", buf, 0)
        if state == 0xFFFFFFFF:
            continue  # empty page
        active += 1
        if struct.unpack_from("<I", buf, 28)[0] != _crc(buf[4:28]):
            errors.append(f"page {page}: header CRC mismatch")
            bad_pages += 1
            continue
        bitmap = buf[32:64]
        index = 0
        while index < ENTRIES:
            bits = (bitmap[index // 4] >> ((index % 4) * 2)) & 3
            if bits != 2:  # 3 empty, 0 erased
                index += 1
                continue
            entry = buf[64 + index * ENTRY:64 + (index + 1) * ENTRY]
            ns, etype, span = entry[0], entry[1], entry[2]
            key = printable(entry[8:24].split(b"\0", 1)[0].decode("utf-8", "replace"))
            if struct.unpack_from("<I", entry, 4)[0] != _crc(entry[0:4] + entry[8:32]):
                errors.append(f"page {page} entry {index} ({key}): entry CRC mismatch")
            value: object
            if etype in _INT_FORMATS:
                value = struct.unpack_from(_INT_FORMATS[etype], entry, 24)[0]
            elif etype in (0x21, 0x42, 0x41):
                size, = struct.unpack_from("<H", entry, 24)
                start = 64 + (index + 1) * ENTRY
                payload = buf[start:start + size]
                if struct.unpack_from("<I", entry, 28)[0] != _crc(payload):
                    errors.append(f"page {page} entry {index} ({key}): data CRC mismatch")
                value = payload.rstrip(b"\0").decode("utf-8", "replace") if etype == 0x21 else bytes(payload)
            else:
                value = bytes(entry[24:32])
            raw.append((page, index, ns, etype, key, value))
            index += max(span, 1)
    if active and bad_pages == active:
        raise ConfigError(f"not an NVS image: the header CRC of all {active} written page(s) fails; give the nvs "
                          "partition (e.g. the file `rtflash provision --out` wrote), not another partition")
    names = {v: k for (_, _, ns, t, k, v) in raw if ns == 0 and t == 0x01}
    items = tuple(Item(names.get(ns, f"#{ns}"), key, _TYPES.get(t, hex(t)), value, page, idx)
                  for page, idx, ns, t, key, value in raw if ns != 0)
    return Image(len(data) // PAGE, active, items, tuple(errors))


def read_file(path: Path) -> Image:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read NVS image: {exc.strerror}; check the path") from None
    try:
        return read_image(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
