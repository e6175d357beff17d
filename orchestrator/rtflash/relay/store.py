"""Enrolled devices: name, board, the SHA-256 of the device token, last use, revoked flag.

Why hashes only: the store sits on the relay host; whoever reads it (a backup, a stray `cat`) must not
be able to act as a device. A token is 32 random bytes (256 bits), so an unsalted SHA-256 is enough
(nothing to brute-force, unlike a password); it is compared in constant time against every entry.
The token itself exists once: printed by `relay enroll`, or written straight into a device's NVS by
`provision --relay`.

The file is JSON, written atomically (temp file + rename) with mode 0600 under the user config dir
(`$RTFLASH_RELAY_STORE`, else ~/.config/rtflash/relay-devices.json). Several processes share it (the
relay records last use, `relay revoke` runs beside it): every read-modify-write holds an flock on a
sidecar `.lock` file, and readers reload when the file's identity (inode, mtime, size) changes, which
is how a running relay sees a revoke at its very next request.

Beside it, under the same lock, `<name>.calls.json` (0600) lists the calls the relay set up in the last
hour (device, call id, start, the upstream it forwarded to and the CA it trusted there; never the key),
so `relay revoke`, another process, can hang them up (relay/calls.py). An hour: the Realtime API's
longest session; older entries are pruned at every write. A file of its own so that recording a call
leaves the device file, which every request checks, unchanged (no reload per call).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rtflash.errors import ConfigError
from rtflash.files import write_atomic

try:  # POSIX; on Windows the store is used without the cross-process lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

TOKEN_PREFIX = "rtd_"
TOKEN_RE = re.compile(r"rtd_[A-Za-z0-9_-]{43}")  # rtd_ + base64url of 32 bytes
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
CALL_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")  # goes into the hang-up URL's path: nothing else
CALL_TTL = 3600  # seconds a call is kept: the Realtime API's longest session (60 min)
VERSION = 1
ISO = "%Y-%m-%dT%H:%M:%SZ"


def store_path(env: Mapping[str, str] | None = None) -> Path:
    from rtflash.resources import user_path

    return user_path("config", "relay-devices.json", "RTFLASH_RELAY_STORE", env)


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


def _call_cutoff() -> str:
    """The start time (ISO, so it compares as text) before which a call is over."""
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=CALL_TTL)
    return then.strftime(ISO)


class Store:
    """The device file. Cheap to query repeatedly: `devices()` re-reads only when the file changed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._devices: dict[str, Device] = {}

    # reading ------------------------------------------------------------------------------------

    def devices(self) -> dict[str, Device]:
        """name -> Device, reloaded when the file changed since the last call."""
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            self._stamp, self._devices = None, {}
            return {}
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the relay's device store: {exc.strerror}; "
                              "fix its permissions") from None
        if stamp != self._stamp:
            self._devices = self._read()
            self._stamp = stamp
        return self._devices

    def _read(self) -> dict[str, Device]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict) or raw.get("version") != VERSION or not isinstance(raw.get("devices"), list):
                raise ValueError("not a version-1 device store")
            found = {}
            for item in raw["devices"]:
                dev = Device(**item)
                if not re.fullmatch(r"[0-9a-f]{64}", dev.token_sha256):
                    raise ValueError(f"device {dev.name!r} has no valid token hash")
                found[dev.name] = dev
            return found
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise ConfigError(f"{self.path}: unreadable relay device store ({exc.__class__.__name__}); fix it or "
                              "move it away and enroll the devices again") from None

    def get(self, name: str) -> Device:
        devices = self.devices()
        if name not in devices:
            known = ", ".join(sorted(devices)) or "none"
            raise ConfigError(f"no device named {name!r} in {self.path} (enrolled: {known}); "
                              f"see `rtflash relay devices`")
        return devices[name]

    def authenticate(self, token: str) -> Device | None:
        """The device holding `token`, revoked or not (the caller refuses revoked ones); None if unknown.

        Every entry is compared, in constant time, so the answer's timing says nothing about the hashes."""
        if not TOKEN_RE.fullmatch(token):
            return None
        digest = token_hash(token)
        match = None
        for dev in self.devices().values():
            if hmac.compare_digest(dev.token_sha256, digest):
                match = dev
        return match

    # writing ------------------------------------------------------------------------------------

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """The cross-process lock every read-modify-write of the store's files holds."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Device]]:
        """Read-modify-write under the lock; the dict yielded is written back when the block ends."""
        with self._lock():
            devices = dict(self._read())
            yield devices
            body = {"version": VERSION, "devices": [asdict(d) for d in devices.values()]}
            write_atomic(self.path, json.dumps(body, indent=2) + "\n", mode=0o600)
            self._stamp = None  # re-read (and re-stamp) on the next query

    def enroll(self, name: str, board: str = "", replace_existing: bool = False, token: str | None = None) -> str:
        """Store a new device (or, with `replace_existing`, a new token for it: the old one stops working);
        returns the token, which is nowhere else."""
        check_name(name)
        token = token or new_token()
        check_token(token, "the token")
        with self._locked() as devices:
            old = devices.get(name)
            if old is not None and not replace_existing:
                raise ConfigError(f"device {name!r} is already enrolled; give it a new token with "
                                  f"`rtflash relay enroll {name} --replace` (its old token stops working)")
            devices[name] = Device(name, token_hash(token), board or (old.board if old else ""), now_iso())
        return token

    def revoke(self, name: str) -> Device:
        with self._locked() as devices:
            if name not in devices:
                known = ", ".join(sorted(devices)) or "none"
                raise ConfigError(f"no device named {name!r} in {self.path} (enrolled: {known})")
            dev = devices[name]
            if not dev.revoked:
                dev = devices[name] = replace(dev, revoked=True, revoked_at=now_iso())
        return dev

    def record_use(self, uses: Mapping[str, tuple[str, str]]) -> None:
        """Merge last-use times {name: (token hash, ISO time)}; an entry re-enrolled since is left alone."""
        if not uses:
            return
        with self._locked() as devices:
            for name, (digest, when) in uses.items():
                dev = devices.get(name)
                if dev is not None and dev.token_sha256 == digest:
                    devices[name] = replace(dev, last_use=when)

    # calls in progress ---------------------------------------------------------------------------

    @property
    def calls_path(self) -> Path:
        return self.path.with_name(self.path.stem + ".calls.json")

    def _read_calls(self) -> list[CallRecord]:
        try:
            raw = json.loads(self.calls_path.read_text(encoding="utf-8"))
            calls = [CallRecord(**item) for item in raw["calls"]]
            if any(not CALL_ID_RE.fullmatch(c.call_id) for c in calls):
                raise ValueError("a call id that is not one")
            return calls
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{self.calls_path}: unreadable list of calls in progress ({exc.__class__.__name__}); "
                              "move it away (only `relay revoke` reads it)") from None

    @contextmanager
    def _locked_calls(self) -> Iterator[list[CallRecord]]:
        """Read-modify-write of the calls under the store's lock; the expired are dropped on the way out."""
        with self._lock():
            calls = self._read_calls()
            yield calls
            cutoff = _call_cutoff()
            body = {"version": VERSION, "calls": [vars(c) for c in calls if c.started >= cutoff]}
            write_atomic(self.calls_path, json.dumps(body) + "\n", mode=0o600)

    def record_calls(self, calls: list[CallRecord]) -> list[CallRecord]:
        """Add calls the relay set up; returns those NOT added because their device is revoked (or gone)
        by now: the revoke has already hung up what it found, so the relay hangs these up itself."""
        refused = []
        with self._locked_calls() as stored:
            devices = self._read()
            for call in calls:
                dev = devices.get(call.device)
                if dev is None or dev.revoked:
                    refused.append(call)
                elif CALL_ID_RE.fullmatch(call.call_id):
                    stored.append(call)
        return refused

    def calls_of(self, name: str) -> list[CallRecord]:
        """The device's calls started within the last hour, oldest first."""
        cutoff = _call_cutoff()
        return [c for c in self._read_calls() if c.device == name and c.started >= cutoff]

    def forget_calls(self, name: str, call_ids: set[str]) -> None:
        """Drop calls that are over (hung up, or the API no longer knows them)."""
        if call_ids:
            with self._locked_calls() as stored:
                stored[:] = [c for c in stored if not (c.device == name and c.call_id in call_ids)]


def open_store(path: Path | None = None, env: Mapping[str, str] | None = None) -> Store:
    return Store(path or store_path(env))


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
