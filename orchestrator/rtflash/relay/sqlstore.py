"""The relay's store in SQL: SQLite (stdlib, the default) and PostgreSQL (psycopg 3), one schema.

Why SQL and not the JSON file it replaces: one transaction per change survives a crash mid-write (the
file was rewritten whole under an flock), several processes and, with PostgreSQL, several hosts see
one state at once (a revoke is in the very next lookup of every relay), and the per-device limits
can live there too (store.py says why).

SQLite: WAL (readers never wait for the writer; a write is one append), `BEGIN IMMEDIATE` for every
change (the writers of all `--workers` queue on the file's lock, `busy_timeout` 10 s), synchronous
NORMAL for the limit bookkeeping (WAL keeps it consistent through a process crash; an OS crash may
lose the last few slots, which is harmless) and FULL for enroll/revoke/import (on disk when the
command returns). The file is created 0600; SQLite gives its -wal/-shm files the file's own mode.

PostgreSQL: psycopg 3 (the maintained driver of the psycopg project; binary wheels with libpq
bundled: `pip install 'rtflash[relay-pg]'`), one connection per thread, autocommit for reads, one
`transaction()` per change. The limit check locks the device's bucket row (`SELECT ... FOR UPDATE`),
so two hosts admitting the same device queue on it; its clock is the database's (`clock_timestamp()`),
one clock for every host. The schema is made under an advisory lock (two relays starting at once).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rtflash import redact
from rtflash.errors import ConfigError
from rtflash.relay.limits import Bucket, LimitConfig, Refused, admit
from rtflash.relay.store import (
    CALL_ID_RE,
    TOKEN_RE,
    CallRecord,
    Device,
    Store,
    is_postgres,
    store_location,
    call_cutoff,
    check_name,
    check_token,
    new_token,
    now_iso,
    read_json_store,
    shown_location,
    token_hash,
)

SCHEMA_VERSION = "1"
SCHEMA = (
    ("CREATE TABLE IF NOT EXISTS devices (name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, "
     "board TEXT NOT NULL DEFAULT '', created TEXT NOT NULL, last_use TEXT, revoked INTEGER NOT NULL DEFAULT 0, "
     "revoked_at TEXT)"),
    ("CREATE TABLE IF NOT EXISTS calls (device TEXT NOT NULL, call_id TEXT NOT NULL, started TEXT NOT NULL, "
     "upstream TEXT NOT NULL, upstream_ca TEXT NOT NULL DEFAULT '', PRIMARY KEY (device, call_id))"),
    ("CREATE TABLE IF NOT EXISTS buckets (device TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, "
     "stamp DOUBLE PRECISION NOT NULL)"),
    ("CREATE TABLE IF NOT EXISTS flights (id TEXT PRIMARY KEY, device TEXT NOT NULL, "
     "until DOUBLE PRECISION NOT NULL)"),
    "CREATE INDEX IF NOT EXISTS flights_device ON flights (device)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_DEVICE_COLUMNS = "name, token_sha256, board, created, last_use, revoked, revoked_at"
_CALL_COLUMNS = "device, call_id, started, upstream, upstream_ca"
_BY_TOKEN = f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE token_sha256 = ?"


def _device(row: tuple) -> Device:
    name, digest, board, created, last_use, revoked, revoked_at = row
    return Device(name, digest, board, created, last_use, bool(revoked), revoked_at)


class SqlStore(Store):
    """What both databases share; a subclass connects, opens transactions and maps errors."""

    for_update = ""  # " FOR UPDATE" where the database locks rows
    for_share = ""

    def __init__(self, where: str) -> None:
        self.where = shown_location(where)
        self._local: Any = threading.local()  # SQLite: one connection per process (SqliteStore)
        self._serial: Any = contextlib.nullcontext()  # what a transaction holds in this process
        self._ready = False
        self._ready_lock = threading.Lock()

    # connections and transactions ------------------------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin(self, conn: Any, durable: bool) -> Any:
        """Start a write transaction; returns what `_end` needs."""
        raise NotImplementedError

    def _end(self, conn: Any, token: Any, ok: bool) -> None:
        raise NotImplementedError

    def _fail(self, exc: Exception) -> ConfigError:
        return ConfigError(redact.redact(f"{self.where}: the relay's store failed ({exc.__class__.__name__}: "
                                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
                                         "check that the database is reachable and writable"))

    def _errors(self) -> tuple[type[Exception], ...]:
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text

    def _absent(self) -> bool:
        """True when there is no store yet: a read answers "nothing" without creating one."""
        return False

    def _conn(self) -> Any:
        """This thread's connection (a fresh one after fork: a connection never crosses processes)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn, local.pid = None, os.getpid()
        if local.conn is None:
            local.conn = self._connect()
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    self._make_schema(local.conn)
                    self._ready = True
        return local.conn

    def _make_schema(self, conn: Any) -> None:
        with self._tx_on(conn, durable=True) as cur:
            self._lock_schema(cur)
            for statement in SCHEMA:
                cur.execute(statement)
            cur.execute(self._sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING"),
                        ("schema", SCHEMA_VERSION))
            cur.execute(self._sql("SELECT value FROM meta WHERE key = ?"), ("schema",))
            version = cur.fetchone()[0]
        if version != SCHEMA_VERSION:
            raise ConfigError(f"{self.where}: relay store schema {version}, this rtflash reads {SCHEMA_VERSION}; "
                              "use the rtflash that made it, or a new store")

    def _lock_schema(self, cur: Any) -> None:
        pass

    @contextmanager
    def _tx_on(self, conn: Any, durable: bool = False) -> Iterator[Any]:
        errors = self._errors()
        try:
            token = self._begin(conn, durable)
        except errors as exc:
            self._drop(conn)
            raise self._fail(exc) from None
        ok = False
        try:
            cur = conn.cursor()
            yield cur
            ok = True
        except errors as exc:
            raise self._fail(exc) from None
        finally:
            try:
                self._end(conn, token, ok)
            except errors as exc:
                self._drop(conn)
                if ok:
                    raise self._fail(exc) from None

    @contextmanager
    def _tx(self, durable: bool = False) -> Iterator[Any]:
        """One write transaction on this thread's connection."""
        with self._serial:
            try:
                conn = self._conn()
            except self._errors() as exc:
                raise self._fail(exc) from None
            with self._tx_on(conn, durable) as cur:
                yield cur

    def _drop(self, conn: Any) -> None:
        """Forget a connection that failed (the next call connects again: a restarted database)."""
        self._local.conn = None
        with contextlib.suppress(Exception):  # it is already broken
            conn.close()

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """One read outside a write transaction."""
        errors = self._errors()
        with self._serial:
            try:
                conn = self._conn()
            except errors as exc:
                raise self._fail(exc) from None
            try:
                cur = conn.cursor()
                cur.execute(self._sql(sql), args)
                return list(cur.fetchall())
            except errors as exc:
                self._drop(conn)
                raise self._fail(exc) from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            self._drop(conn)

    # devices ---------------------------------------------------------------------------------------

    def devices(self) -> dict[str, Device]:
        if self._absent():
            return {}
        return {d.name: d for d in map(_device, self._read(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY name"))}

    def find(self, name: str) -> Device | None:
        if self._absent():
            return None
        rows = self._read(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE name = ?", (name,))
        return _device(rows[0]) if rows else None

    def authenticate(self, token: str) -> Device | None:
        if not TOKEN_RE.fullmatch(token or "") or self._absent():
            return None
        rows = self._read(_BY_TOKEN, (token_hash(token),))
        return _device(rows[0]) if rows else None

    def enroll(self, name: str, board: str = "", replace_existing: bool = False, token: str | None = None) -> str:
        check_name(name)
        token = token or new_token()
        check_token(token, "the token")
        with self._tx(durable=True) as cur:
            cur.execute(self._sql(f"SELECT board FROM devices WHERE name = ?{self.for_update}"), (name,))
            old = cur.fetchone()
            if old is not None and not replace_existing:
                raise ConfigError(f"device {name!r} is already enrolled; give it a new token with "
                                  f"`rtflash relay enroll {name} --replace` (its old token stops working)")
            if old is None:
                cur.execute(self._sql(f"INSERT INTO devices ({_DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, NULL, 0, NULL)"),
                            (name, token_hash(token), board, now_iso()))
            else:
                cur.execute(self._sql("UPDATE devices SET token_sha256 = ?, board = ?, created = ?, last_use = NULL, "
                                      "revoked = 0, revoked_at = NULL WHERE name = ?"),
                            (token_hash(token), board or old[0], now_iso(), name))
        return token

    def revoke(self, name: str) -> Device:
        with self._tx(durable=True) as cur:
            cur.execute(self._sql("UPDATE devices SET revoked = 1, revoked_at = ? WHERE name = ? AND revoked = 0"),
                        (now_iso(), name))
            cur.execute(self._sql(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE name = ?"), (name,))
            row = cur.fetchone()
        if row is None:
            known = ", ".join(sorted(self.devices())) or "none"
            raise ConfigError(f"no device named {name!r} in {self.where} (enrolled: {known})")
        return _device(row)

    def record_use(self, uses: Mapping[str, tuple[str, str]]) -> None:
        if uses:
            with self._tx() as cur:
                for name, (digest, when) in sorted(uses.items()):
                    cur.execute(self._sql("UPDATE devices SET last_use = ? WHERE name = ? AND token_sha256 = ?"),
                                (when, name, digest))

    # calls -----------------------------------------------------------------------------------------

    def record_calls(self, calls: list[CallRecord]) -> list[CallRecord]:
        refused: list[CallRecord] = []
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM calls WHERE started < ?"), (call_cutoff(),))
            # in device order, as record_use updates them: two relays' transactions lock the rows of
            # the devices in one order, so neither waits on the other in a cycle (a PostgreSQL deadlock)
            for call in sorted(calls, key=lambda c: (c.device, c.call_id)):
                if not self._record(cur, call):
                    refused.append(call)
        return [call for call in calls if call in refused]  # in the order given

    def _record(self, cur: Any, call: CallRecord) -> bool:
        """In a write transaction: store `call` unless its device is revoked or gone (False then). A call
        id that is not one is dropped (it would go into the hang-up URL's path)."""
        # FOR SHARE: a revoke committing meanwhile waits for this transaction, then finds the call
        cur.execute(self._sql(f"SELECT revoked FROM devices WHERE name = ?{self.for_share}"), (call.device,))
        row = cur.fetchone()
        if row is None or row[0]:
            return False
        if CALL_ID_RE.fullmatch(call.call_id):
            cur.execute(self._sql(f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                                  "ON CONFLICT (device, call_id) DO NOTHING"),
                        (call.device, call.call_id, call.started, call.upstream, call.upstream_ca))
        return True

    def calls_of(self, name: str) -> list[CallRecord]:
        if self._absent():
            return []
        rows = self._read(f"SELECT {_CALL_COLUMNS} FROM calls WHERE device = ? AND started >= ? ORDER BY started, "
                          "call_id", (name, call_cutoff()))
        return [CallRecord(*row) for row in rows]

    def forget_calls(self, name: str, call_ids: set[str]) -> None:
        if call_ids:
            with self._tx() as cur:
                for cid in sorted(call_ids):
                    cur.execute(self._sql("DELETE FROM calls WHERE device = ? AND call_id = ?"), (name, cid))

    # limits ----------------------------------------------------------------------------------------

    def _now(self, cur: Any) -> float:
        return time.time()

    def acquire(self, device: str, limits: LimitConfig, hold: float) -> str:
        slot = secrets.token_hex(8)
        with self._tx() as cur:
            refused = self._take(cur, device, limits, hold, slot)
        if refused is not None:
            raise refused
        return slot

    def admit(self, token: str, limits: LimitConfig, hold: float) -> tuple[Device | None, str | Refused]:
        if not TOKEN_RE.fullmatch(token or "") or self._absent():
            return None, ""
        slot = secrets.token_hex(8)
        with self._tx() as cur:
            cur.execute(self._sql(_BY_TOKEN), (token_hash(token),))
            row = cur.fetchone()
            device = _device(row) if row else None
            if device is None or device.revoked:
                return device, ""
            refused = self._take(cur, device.name, limits, hold, slot)
        return device, refused or slot

    def _take(self, cur: Any, device: str, limits: LimitConfig, hold: float, slot: str) -> Refused | None:
        """In a write transaction: admit one offer of `device` (slot `slot`), or why not."""
        refused: Refused | None = None
        now = self._now(cur)
        cur.execute(self._sql("INSERT INTO buckets (device, tokens, stamp) VALUES (?, ?, ?) "
                              "ON CONFLICT (device) DO NOTHING"), (device, float(limits.burst), now))
        cur.execute(self._sql(f"SELECT tokens, stamp FROM buckets WHERE device = ?{self.for_update}"), (device,))
        tokens, stamp = cur.fetchone()
        # a slot past its expiry (its process died holding it) no longer counts; prune() drops it
        cur.execute(self._sql("SELECT COUNT(*) FROM flights WHERE device = ? AND until >= ?"), (device, now))
        bucket = Bucket(float(tokens), float(stamp), int(cur.fetchone()[0]))
        try:
            admit(limits, bucket, now)
        except Refused as exc:
            refused = exc
        cur.execute(self._sql("UPDATE buckets SET tokens = ?, stamp = ? WHERE device = ?"),
                    (bucket.tokens, bucket.stamp, device))
        if refused is None:
            cur.execute(self._sql("INSERT INTO flights (id, device, until) VALUES (?, ?, ?)"),
                        (slot, device, now + hold))
        return refused

    def finish(self, slot: str, call: CallRecord | None = None) -> bool:
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM flights WHERE id = ?"), (slot,))
            return call is None or self._record(cur, call)

    def prune(self) -> None:
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM calls WHERE started < ?"), (call_cutoff(),))
            cur.execute(self._sql("DELETE FROM flights WHERE until < ?"), (self._now(cur),))

    def in_flight(self, device: str) -> int:
        rows = self._read("SELECT COUNT(*) FROM flights WHERE device = ? AND until >= ?", (device, time.time()))
        return int(rows[0][0])

    # the store itself ------------------------------------------------------------------------------

    def ping(self) -> None:
        self._read("SELECT 1")

    def imported(self, source: str) -> str | None:
        if self._absent():
            return None
        rows = self._read("SELECT value FROM meta WHERE key = ?", ("imported:" + source,))
        return rows[0][0] if rows else None

    def import_json(self, source: Path) -> tuple[int, int]:
        source = Path(source).absolute()
        devices, calls = read_json_store(source)
        added = 0
        with self._tx(durable=True) as cur:
            cur.execute(self._sql(f"SELECT value FROM meta WHERE key = ?{self.for_update}"), ("imported:" + str(source),))
            row = cur.fetchone()
            if row is not None:
                raise ConfigError(f"{source}: already imported into {self.where} on {row[0]}; nothing to do "
                                  "(the relay uses the database now)")
            for dev in devices:
                cur.execute(self._sql(f"INSERT INTO devices ({_DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                                      "ON CONFLICT DO NOTHING"),
                            (dev.name, dev.token_sha256, dev.board, dev.created or now_iso(), dev.last_use,
                             1 if dev.revoked else 0, dev.revoked_at))
                added += cur.rowcount if cur.rowcount and cur.rowcount > 0 else 0
            for call in calls:
                cur.execute(self._sql(f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                                      "ON CONFLICT (device, call_id) DO NOTHING"),
                            (call.device, call.call_id, call.started, call.upstream, call.upstream_ca))
            cur.execute(self._sql("INSERT INTO meta (key, value) VALUES (?, ?)"), ("imported:" + str(source), now_iso()))
        return added, len(calls)


class SqliteStore(SqlStore):
    """The default store: one SQLite file (0600) beside the rest of the user's rtflash config."""

    local = True  # called on the relay's loop (store.in_store)

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        super().__init__(str(self.path))
        # One connection per process, its use serialized: SQLite has one writer per file anyway, and
        # threads opening connections while another process closes the file's last one (which removes
        # the WAL) can see SQLITE_IOERR; one long-lived connection opens once.
        self._local = types.SimpleNamespace(conn=None, pid=None)
        self._serial = threading.RLock()

    def files(self) -> list[Path]:
        """The database and its WAL files that exist now (what a secret scan must read)."""
        return [p for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")) if p.exists()]

    def _errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error,)

    def _absent(self) -> bool:
        return getattr(self._local, "conn", None) is None and not self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            if self.path.stat().st_mode & 0o077:
                os.chmod(self.path, 0o600)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot open the relay's store: {exc.strerror}; fix the directory's "
                              "permissions or pick another --store") from None
        for attempt in range(5):  # a disk I/O error while another process closes the file: try again
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                return conn
            except sqlite3.DatabaseError as exc:
                conn.close()
                if "disk I/O" in str(exc) and attempt < 4:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise ConfigError(f"{self.path}: not a relay store (SQLite: {exc}); move it away or pick another "
                                  "--store") from None
        raise AssertionError("unreachable")

    def _begin(self, conn: sqlite3.Connection, durable: bool) -> bool:
        if durable:
            conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        return durable

    def _end(self, conn: sqlite3.Connection, durable: bool, ok: bool) -> None:
        try:
            conn.execute("COMMIT" if ok else "ROLLBACK")
        finally:
            if durable:
                conn.execute("PRAGMA synchronous=NORMAL")

    def _now(self, cur: Any) -> float:
        return self.clock()

    def in_flight(self, device: str) -> int:
        rows = self._read("SELECT COUNT(*) FROM flights WHERE device = ? AND until >= ?", (device, self.clock()))
        return int(rows[0][0])


class PostgresStore(SqlStore):
    """Several relay hosts on one PostgreSQL database: `--store postgresql://user@host/db`."""

    for_update = " FOR UPDATE"
    for_share = " FOR SHARE"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(f"{shown_location(url)}: a PostgreSQL store needs psycopg 3: pip install "
                              "'rtflash[relay-pg]'") from None
        self._psycopg = psycopg
        self.url = url
        from urllib.parse import unquote, urlsplit

        password = urlsplit(url).password
        if password:
            redact.register(unquote(password))
        super().__init__(url)

    def _errors(self) -> tuple[type[Exception], ...]:
        return (self._psycopg.Error,)

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except self._psycopg.Error as exc:
            raise self._fail(exc) from None

    def _begin(self, conn: Any, durable: bool) -> Any:
        tx = conn.transaction()
        tx.__enter__()
        return tx

    def _end(self, conn: Any, tx: Any, ok: bool) -> None:
        if ok:
            tx.__exit__(None, None, None)
        else:
            tx.__exit__(RuntimeError, RuntimeError("rolled back"), None)

    def _lock_schema(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(7270219)")  # two relays creating the schema at once

    def _now(self, cur: Any) -> float:
        cur.execute("SELECT extract(epoch FROM clock_timestamp())")
        return float(cur.fetchone()[0])

    def in_flight(self, device: str) -> int:
        rows = self._read("SELECT COUNT(*) FROM flights WHERE device = ? AND until >= extract(epoch FROM "
                          "clock_timestamp())", (device,))
        return int(rows[0][0])


def open_store(where: str | Path | None = None, configured: str = "", env: Mapping[str, str] | None = None,
               check_legacy: bool = True) -> Store:
    """The store at `where` (see store_location); SQLite unless a PostgreSQL URL. With `check_legacy`,
    a SQLite file beside an old JSON store not imported yet is refused with the command that imports it."""
    location = store_location(where, configured, env)
    if is_postgres(location):
        return PostgresStore(location)
    store = SqliteStore(Path(location))
    if check_legacy:
        legacy = Path(location).with_suffix(".json")
        if legacy.is_file() and store.imported(str(legacy)) is None:
            raise ConfigError(f"{legacy}: the relay's devices are still in the old JSON store; import them once "
                              f"with `rtflash relay migrate --from {legacy}` (into {location})")
    return store
