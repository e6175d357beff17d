"""A real PostgreSQL server for the relay's tests: Debian's binaries, a temp dir, 127.0.0.1, stopped after.

Why a real server: the PostgreSQL store's locking (`FOR UPDATE` on a device's bucket, `FOR SHARE` in
record_calls), its clock and its errors are the server's; nothing else shows them. `PgServer` runs
`initdb` (password auth, scram-sha-256, on 127.0.0.1 and a Unix socket in the temp dir) and `pg_ctl
start`; as root (CI) both run as the `postgres` user Debian's package creates (PostgreSQL refuses to run
as root), with the temp dir handed to it. `database()` makes a fresh database per test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

PASSWORD = "pg-" + "relay-canary-7f3a"  # a secret: the tests check it shows nowhere
USER = "rtflash"


def pg_bindir() -> Path | None:
    """Debian's newest installed PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin)."""
    root = Path("/usr/lib/postgresql")
    found = sorted((p for p in root.glob("*/bin") if (p / "initdb").exists() and (p / "pg_ctl").exists()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="rtflash-pg-"))
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._count = 0

    def _run(self, *argv: str) -> None:
        done = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=120, check=False,
                              stdin=subprocess.DEVNULL, cwd=self.dir)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]} {log}")

    def start(self) -> PgServer:
        pwfile = self.dir / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as:
            shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(pwfile, 0o600)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8")
        pwfile.unlink()
        # the port is picked free, then bound by the server a moment later: another process on this busy
        # machine can take it in between. The server then refuses to start ("could not bind"); pick
        # another port and start again (bounded), rather than fail the session's tests
        for attempt in range(5):
            opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=200"
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w",
                          "-t", "60", "start")
                return self
            except RuntimeError as exc:
                if attempt == 4 or "could not bind" not in str(exc) + self.log.read_text(errors="replace"):
                    raise
                self.log.unlink()  # the next attempt's log says only what happened to it
                self.port = _free_port()
        raise AssertionError("unreachable")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{USER}:{quote(PASSWORD)}@127.0.0.1:{self.port}/{db}"

    def database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._count += 1
        name = f"relay_{os.getpid()}_{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
