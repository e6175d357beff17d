"""Enrolled devices, calls in progress and per-device limits: the relay's store, behind one interface.

What is kept: per device its name, board, the SHA-256 of its token, last use, revoked flag; the calls
the relay set up in the last hour (for `relay revoke` to hang up: relay/calls.py); the state of each
device's limits (relay/limits.py). Two implementations of `Store` (relay/sqlstore.py): SQLite (stdlib
`sqlite3`, the default: one file, 0600, WAL, one transaction per change, for one host and its
`serve --workers`) and PostgreSQL (psycopg 3, `rtflash[relay-pg]`, for several relay hosts sharing
one database). Where it is: `relay --store`, else $RTFLASH_RELAY_STORE, else `[relay] store` in
rtflash.toml, else ~/.config/rtflash/relay-devices.db; a `postgresql://` URL picks PostgreSQL.

Why hashes only: the store sits on the relay host or a database server; whoever reads it (a backup, a
stray `SELECT`) must not be able to act as a device. A token is 32 random bytes (256 bits), so an
unsalted SHA-256 is enough (nothing to brute-force, unlike a password). A request's token is looked up
by its hash (an index): what a lookup's timing could tell is at most a prefix of some stored hash,
which gives no token (that needs a SHA-256 preimage).

Why the limits are in the store: a device's burst and concurrency must hold across every process and
host serving it; a counter in one process holds for that process only. Concurrency is a row per
offer in flight with an expiry (a process killed mid-offer frees its slots when they expire), the
rate a token bucket per device, both changed in one transaction that locks the device's bucket row.

Before the database the store was a JSON file (`relay-devices.json` + `.calls.json`); `rtflash relay
migrate --from FILE` imports it once (`read_json_store`), and a store opened beside one that was not
imported refuses with the command to run.
"""

from __future__ import annotations

import abc
import datetime
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from rtflash.errors import ConfigError
from rtflash.relay.limits import LimitConfig, Refused

T = TypeVar("T")

TOKEN_PREFIX = "rtd_"
TOKEN_RE = re.compile(r"rtd_[A-Za-z0-9_-]{43}")  # rtd_ + base64url of 32 bytes
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
CALL_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")  # goes into the hang-up URL's path: nothing else
CALL_TTL = 3600  # seconds a call is kept: the Realtime API's longest session (60 min)
VERSION = 1
ISO = "%Y-%m-%dT%H:%M:%SZ"


STORE_ENV = "RTFLASH_RELAY_STORE"
PG_SCHEMES = ("postgresql", "postgres")


def store_location(given: str | Path | None = None, configured: str = "",
                   env: Mapping[str, str] | None = None) -> str:
    """Where the store is: `given` (--store), $RTFLASH_RELAY_STORE, rtflash.toml's `[relay] store`, else
    the default file; a PostgreSQL URL as given, a path made absolute. A path ending in `.json` (how
    $RTFLASH_RELAY_STORE named the old JSON store) means the SQLite file beside it, `<stem>.db`."""
    import os

    from rtflash.resources import user_path

    env = os.environ if env is None else env
    where = str(given or env.get(STORE_ENV) or configured or "")
    if is_postgres(where):
        return where
    path = Path(where).expanduser() if where else user_path("config", "relay-devices.db", "_", {**env, "_": ""})
    if path.suffix == ".json":
        path = path.with_suffix(".db")
    return str(path.absolute())


def is_postgres(where: str) -> bool:
    return urlsplit(where).scheme in PG_SCHEMES


def shown_location(where: str) -> str:
    """The store's location for messages and logs: a URL's password masked."""
    parts = urlsplit(where)
    if parts.password is None:
        return where
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def new_token() -> str:
    """A fresh device token: `rtd_` and 32 random bytes, base64url (43 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise ConfigError(f"device name {name!r}: use 1-32 letters, digits, '.', '_' or '-', starting with a "
                          "letter or digit (e.g. kitchen-1)")
    return name


def check_token(token: str, where: str) -> str:
    if not TOKEN_RE.fullmatch(token):
        raise ConfigError(f"{where} is not a relay device token (rtd_ and 43 base64url characters, as "
                          "`rtflash relay enroll` prints it); copy it again")
    return token


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime(ISO)


@dataclass(frozen=True)
class Device:
    name: str
    token_sha256: str
    board: str = ""
    created: str = ""
    last_use: str | None = None
    revoked: bool = False
    revoked_at: str | None = None

    def public(self) -> dict:
        """What `relay devices --json` shows (the hash stays in the file)."""
        d = asdict(self)
        del d["token_sha256"]
        return d


@dataclass(frozen=True)
class CallRecord:
    """A call the relay set up: what `relay revoke` needs to hang it up, and no secret."""

    device: str
    call_id: str
    started: str  # ISO UTC, as now_iso()
    upstream: str  # the create-call URL the relay forwarded to: the hang-up goes under it
    upstream_ca: str = ""  # the CA file the relay trusted for it (--upstream-ca); "" = the system's


def call_cutoff() -> str:
    """The start time (ISO, so it compares as text) before which a call is over."""
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=CALL_TTL)
    return then.strftime(ISO)


class Store(abc.ABC):
    """The relay's store. Every method is one transaction (or one read); safe to call from several
    threads (each gets its own connection) and processes; errors are ConfigError naming the store."""

    where: str  # the location, as shown (shown_location)
    # The relay calls a local store (SQLite: a file, sub-millisecond transactions) on its event loop,
    # a remote one (PostgreSQL: a network round trip) in a thread: see `in_store`.
    local: bool = False

    # devices -------------------------------------------------------------------------------------

    @abc.abstractmethod
    def devices(self) -> dict[str, Device]:
        """name -> Device, sorted by name."""

    @abc.abstractmethod
    def find(self, name: str) -> Device | None:
        """The device named `name`, or None."""

    def get(self, name: str) -> Device:
        dev = self.find(name)
        if dev is None:
            known = ", ".join(sorted(self.devices())) or "none"
            raise ConfigError(f"no device named {name!r} in {self.where} (enrolled: {known}); "
                              f"see `rtflash relay devices`")
        return dev

    @abc.abstractmethod
    def authenticate(self, token: str) -> Device | None:
        """The device holding `token`, revoked or not (the caller refuses revoked ones); None if unknown."""

    @abc.abstractmethod
    def enroll(self, name: str, board: str = "", replace_existing: bool = False, token: str | None = None) -> str:
        """Store a new device (or, with `replace_existing`, a new token for it: the old one stops working,
        a revoked device is let back in); returns the token, which is nowhere else."""

    @abc.abstractmethod
    def revoke(self, name: str) -> Device:
        """Mark the device revoked (its next offer gets 401 from every relay on this store)."""

    @abc.abstractmethod
    def record_use(self, uses: Mapping[str, tuple[str, str]]) -> None:
        """Merge last-use times {name: (token hash, ISO time)}; an entry re-enrolled since is left alone."""

    # calls in progress ---------------------------------------------------------------------------

    @abc.abstractmethod
    def record_calls(self, calls: list[CallRecord]) -> list[CallRecord]:
        """Add calls the relay set up; returns those NOT added because their device is revoked (or gone)
        by now: the revoke has already hung up what it found, so the relay hangs these up itself."""

    @abc.abstractmethod
    def calls_of(self, name: str) -> list[CallRecord]:
        """The device's calls started within the last hour, oldest first."""

    @abc.abstractmethod
    def forget_calls(self, name: str, call_ids: set[str]) -> None:
        """Drop calls that are over (hung up, or the API no longer knows them)."""

    # limits --------------------------------------------------------------------------------------

    @abc.abstractmethod
    def acquire(self, device: str, limits: LimitConfig, hold: float) -> str:
        """Admit one offer of `device` under `limits` or raise limits.Refused; returns the id of its
        slot, to `finish` when the offer is done (else the slot expires after `hold` seconds)."""

    @abc.abstractmethod
    def admit(self, token: str, limits: LimitConfig, hold: float) -> tuple[Device | None, str | Refused]:
        """`authenticate(token)` and, for a device not revoked, `acquire`, in one transaction (the
        relay's first write of an offer): (device or None, its slot, a Refused, or "" when there is no
        device or it is revoked)."""

    @abc.abstractmethod
    def finish(self, slot: str, call: CallRecord | None = None) -> bool:
        """The offer holding `slot` is done: its slot released and, in the same transaction, `call`
        recorded as `record_calls([call])` would (the end of an offer in one write: bench/relay_bench.py,
        CPU per offer). False when `call` was not recorded because its device is revoked (or gone) by
        now: the relay hangs that one up."""

    @abc.abstractmethod
    def prune(self) -> None:
        """Drop what is over: calls older than an hour, limit slots past their expiry (the relay runs
        it with its periodic flush, so no offer pays for it)."""

    @abc.abstractmethod
    def in_flight(self, device: str) -> int:
        """Offers of `device` in flight now, across every process on this store."""

    # the store itself ----------------------------------------------------------------------------

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ConfigError unless the store answers (GET /healthz)."""

    @abc.abstractmethod
    def imported(self, source: str) -> str | None:
        """When the JSON store `source` (absolute path) was imported into this one, or None."""

    @abc.abstractmethod
    def import_json(self, source: Path) -> tuple[int, int]:
        """Import the old JSON store at `source` in one transaction: (devices, calls) added. A device
        already here keeps its entry; importing the same file twice is refused."""

    def close(self) -> None:
        """Close this thread's connection (the others close with their threads)."""


def read_json_store(path: Path) -> tuple[list[Device], list[CallRecord]]:
    """The old JSON store (version 1) and its `<stem>.calls.json`: what `relay migrate` imports."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("version") != VERSION or not isinstance(raw.get("devices"), list):
            raise ValueError("not a version-1 device store")
        devices = [Device(**item) for item in raw["devices"]]
        for dev in devices:
            check_name(dev.name)
            if not re.fullmatch(r"[0-9a-f]{64}", dev.token_sha256):
                raise ValueError(f"device {dev.name!r} has no valid token hash")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; give the old store's path (relay-devices.json)") from None
    except (OSError, UnicodeDecodeError, ValueError, TypeError, ConfigError) as exc:
        raise ConfigError(f"{path}: not a readable rtflash JSON device store ({exc.__class__.__name__}); "
                          "give relay-devices.json as the relay of earlier versions wrote it") from None
    calls_path = path.with_name(path.stem + ".calls.json")
    calls: list[CallRecord] = []
    try:
        calls = [CallRecord(**item) for item in json.loads(calls_path.read_text(encoding="utf-8"))["calls"]]
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{calls_path}: unreadable list of calls ({exc.__class__.__name__}); move it away "
                          "(it only lists calls of the last hour) and migrate again") from None
    cutoff = call_cutoff()
    return devices, [c for c in calls if CALL_ID_RE.fullmatch(c.call_id) and c.started >= cutoff]


def describe_age(iso: str | None, now: Callable[[], datetime.datetime] | None = None) -> str:
    """'never', or '2025-01-01T12:00:00Z (3 min ago)' for the devices list."""
    if not iso:
        return "never"
    then = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    secs = ((now or (lambda: datetime.datetime.now(datetime.timezone.utc)))() - then).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{iso} ({int(secs // size)} {unit} ago)"
    return f"{iso} (just now)"


async def in_store(store: Store, fn: Callable[..., T], *args: Any) -> T:
    """Run one store call from the relay's event loop: inline for a local store, else in a thread.

    Why inline for SQLite: a thread hand-off (pool queue, worker wake-up, GIL switch, the loop's
    self-pipe wake-up) cost the relay more CPU per offer (about 1.5 ms over three calls, measured
    in bench/relay_bench.py) than the transactions themselves (about 0.1 ms each). The price: a write
    that waits for another process's write lock (`--workers`, `relay revoke`) waits on the loop;
    every transaction the relay and the CLI make is short, so that wait is too."""
    if store.local:
        return fn(*args)
    import asyncio

    return await asyncio.to_thread(fn, *args)
