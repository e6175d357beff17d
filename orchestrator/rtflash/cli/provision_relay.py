"""The relay half of `rtflash provision --relay URL --device NAME [--relay-ca FILE]`.

Tokens: `relay enroll NAME` mints a token, keeps its hash and prints the token ONCE on stdout (for a
relay on another host: give it to `provision` there as $RTFLASH_RELAY_TOKEN). `provision --relay URL
--device NAME` without $RTFLASH_RELAY_TOKEN enrolls the device in this machine's store itself, with a
fresh token written straight into the NVS image (re-provisioning replaces the token: the old copy
stops working); a revoked device is refused until `relay enroll NAME --replace` lets it back in. The
linux board has no NVS: the same three settings go to the secrets file (0600), and `rtflash exec --relay`
passes them to the firmware's environment (linux_hint).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import click

TOKEN_ENV = "RTFLASH_RELAY_TOKEN"


def ca_context(path: Path, option: str) -> ssl.SSLContext:
    """A verifying client context trusting the PEM CA at `path` (--upstream-ca, --relay-ca)."""
    from rtflash.errors import ConfigError

    try:
        return ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"{option} {path}: not a usable PEM CA certificate ({exc.__class__.__name__}); give the "
                          "CA file (-----BEGIN CERTIFICATE-----)") from None


def ca_der_base64(path: Path) -> str:
    """The CA for NVS: one line, base64 of the certificate's DER. Why not the PEM: NVS values go through
    the generator's CSV one line each, and the firmware decodes this with mbedtls_base64_decode and
    parses it with mbedtls_x509_crt_parse_der."""
    import base64

    from rtflash.errors import ConfigError

    pem = path.read_text(encoding="ascii", errors="replace")
    count = pem.count("-----BEGIN CERTIFICATE-----")
    if count != 1:
        raise ConfigError(f"--relay-ca {path}: holds {count} PEM certificates; give the one CA certificate that "
                          "signed the relay's certificate")
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN CERTIFICATE-----"):])).decode("ascii")


@dataclass
class RelaySetup:
    """What `provision --relay` writes into NVS (relay_url, relay_token, relay_ca) and how to enroll it."""

    url: str
    device: str
    token: str
    board: str
    ca_pem: str = ""  # base64 of the DER (ca_der_base64): NVS key relay_ca
    minted: bool = False  # True: commit() enrolls it in this machine's store
    store: str = ""  # rtflash.toml's `[relay] store` ($RTFLASH_RELAY_STORE still wins): where commit() enrolls
    pairs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pairs = {"relay_url": self.url, "relay_token": self.token}
        if self.ca_pem:
            self.pairs["relay_ca"] = self.ca_pem

    def commit(self) -> None:
        """Enroll the minted token (replacing the device's old one) once the image is built."""
        if self.minted:
            from rtflash.relay.sqlstore import open_store

            open_store(configured=self.store).enroll(self.device, self.board, replace_existing=True, token=self.token)


def configured_store(settings: object) -> str:
    """rtflash.toml's `[relay] store` ("" when unset): the store every command on this project uses."""
    return (getattr(settings, "relay", None) or {}).get("store", "")


def relay_setup(board, url: str | None, device: str | None, ca_file: Path | None, store: str = "") -> RelaySetup:
    """Check --relay/--device/--relay-ca and pick the token (RTFLASH_RELAY_TOKEN, else a fresh one,
    enrolled in `store`: rtflash.toml's `[relay] store`, as `rtflash relay` uses it)."""
    from rtflash import redact
    from rtflash.errors import ConfigError
    from rtflash.relay.sqlstore import open_store
    from rtflash.relay.store import check_name, check_token, new_token

    if not (url and device):
        raise click.UsageError("--relay URL and --device NAME go together (--relay-ca FILE with them, for a relay "
                               "with a private certificate)")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise click.BadParameter(f"{url!r}: give the relay's https:// URL, e.g. https://relay.lan:8443/v1/realtime/calls "
                                 "(the device verifies its certificate)", param_hint="--relay")
    check_name(device)
    ca_pem = ""
    if ca_file is not None:
        ca_context(ca_file, "--relay-ca")
        ca_pem = ca_der_base64(ca_file)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        check_token(token, f"${TOKEN_ENV}")
        redact.register(token)
        return RelaySetup(url, device, token, board.name, ca_pem)
    known = open_store(configured=store).devices().get(device)
    if known is not None and known.revoked:
        raise ConfigError(f"device {device!r} is revoked; `rtflash relay enroll {device} --replace` lets it back in "
                          "(then provision it with that token in $" + TOKEN_ENV + ")")
    token = new_token()
    redact.register(token)
    return RelaySetup(url, device, token, board.name, ca_pem, minted=True, store=store)


def linux_hint(setup: RelaySetup, stored: Path) -> str:
    """What `provision --board linux --relay` did, in one line: the linux board has no NVS, so the relay URL,
    token and CA went to the secrets file (0600), where `rtflash exec --relay URL` finds them. Never the token."""
    how = "enrolled with a fresh token" if setup.minted else f"with the token in ${TOKEN_ENV}"
    ca = ", the relay's CA" if setup.ca_pem else ""
    return (f"the linux board has no NVS partition: device {setup.device} {how}; its relay URL, token{ca} stored in "
            f"{stored} (mode 0600): run `rtflash exec --relay {setup.url}`")
