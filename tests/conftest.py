"""Shared fixtures. Each helper module's own fixtures live beside its tests unless shared."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from testkit.shared import (  # noqa: F401  (re-exported: tests import these from conftest too)
    CACHE,
    NO_SHARED,
    SHARED,
    SHARED_DEPS,
    SHARED_IDF,
    SHARED_PIO,
    idf_venv,
    install_fake_idf,
    need_installed,
    pio_offline_dir,
    real_idf_env,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_redaction():
    """Every test starts with no registered secrets."""
    from rtflash import redact

    redact.clear()
    yield
    redact.clear()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project directory as the working directory, with credentials env vars unset."""
    for var in ("RTFLASH_WIFI_SSID", "RTFLASH_WIFI_PASSWORD", "RTFLASH_OPENAI_API_KEY",
                "WIFI_SSID", "WIFI_PASSWORD", "OPENAI_API_KEY", "IDF_PATH", "RTFLASH_SECRETS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RTFLASH_CACHE_DIR", str(tmp_path.parent / f"{tmp_path.name}-device-cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def real_idf(project: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The real ESP-IDF active for this test (after `project`, which clears IDF_PATH). Skips only where
    ../shared is absent; a missing Python env is a failure (run .ci/run, or set RTFLASH_IDF_VENV)."""
    if not (SHARED_IDF / "tools" / "idf.py").is_file():
        pytest.skip(NO_SHARED)
    if not (idf_venv() / "bin" / "python").is_file():
        pytest.fail(f"ESP-IDF Python env missing at {idf_venv()}: run `bash .ci/run` once, or set RTFLASH_IDF_VENV")
    env = real_idf_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def shared_deps() -> Path:
    """../shared/deps: libpeer and the registry components (components/<ns>__<name>)."""
    if not (SHARED_DEPS / "libpeer").is_dir():
        pytest.skip(NO_SHARED)
    return SHARED_DEPS


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner, project: Path):
    """Run `rtflash ARGS` in-process through main() (so error mapping is exercised); returns the result."""
    def _invoke(*args: str, input: str | None = None, env: dict | None = None):
        return runner.invoke(_Main(), list(args), input=input, env=env, catch_exceptions=False)

    return _invoke


class _Main:
    """Adapter so CliRunner drives `main()` (error mapping, exit codes) rather than the bare group."""

    name = "rtflash"

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        from rtflash.cli import main

        main(list(args or []))


@pytest.fixture
def rtflash_exe() -> str:
    """The installed `rtflash` console script of the venv running the tests."""
    import shutil
    import sys

    exe = Path(sys.executable).parent / "rtflash"
    found = str(exe) if exe.exists() else shutil.which("rtflash")
    assert found, "rtflash console script not installed: pip install -e .[test]"
    return found


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def fake_idf(tmp_path_factory, monkeypatch) -> dict[str, str]:
    """The stand-in idf.py installed and active for this test (environment already set)."""
    env = install_fake_idf(tmp_path_factory.mktemp("fake-idf"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RTFLASH_NO_CCACHE", "1")
    return env


@pytest.fixture
def emulators():
    """Start emulated ESP32-S3 ROM bootloaders (testkit/esp_rom_emulator.py): `emulators(**chip_kw)`."""
    from testkit.esp_rom_emulator import PtyEmulator, SocketEmulator

    started = []

    def start(pty: bool = False, **kw):
        emu = (PtyEmulator if pty else SocketEmulator)(**kw).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.close()


class DeviceServer:
    """A device at socket://127.0.0.1:PORT for the monitor: connection N is served by `sessions[N]`.

    A session is bytes (sent, then the connection is closed: the device "vanishes") or a callable
    taking the connected socket. After the last session nothing listens any more. What the monitor
    sends (keys) is collected in `received`. Each session starts `settle` seconds after the accept,
    like a device that talks once the port is open: pyserial drops what arrives while it opens
    (its open() flushes the input, on a socket as on a tty).
    """

    def __init__(self, sessions, settle: float = 0.1) -> None:
        import socket
        import threading

        self.sessions = list(sessions)
        self.settle = settle
        self.received = bytearray()
        self.connections = 0
        self.served = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import time

        for session in self.sessions:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            time.sleep(self.settle)
            with conn:
                if callable(session):
                    session(conn)
                else:
                    conn.sendall(session)
                    self.drain(conn, 0.05)
        self._listener.close()
        self.served.set()

    def drain(self, conn, seconds: float) -> None:
        """Collect what the monitor sent for a while."""
        import time

        conn.settimeout(0.02)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = conn.recv(4096)
            except OSError:
                continue
            if not data:
                return
            self.received += data

    def close(self) -> None:
        try:
            self._listener.close()
        except OSError:
            pass


@pytest.fixture
def device_server():
    """`device_server(*sessions)` -> a DeviceServer; closed after the test."""
    servers = []

    def start(*sessions):
        server = DeviceServer(sessions)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


CRASH_C = r"""
#include <stdio.h>
#include <stdlib.h>

static volatile int sink;

__attribute__((noinline)) void crash_now(int depth)
{
    sink = depth;
    abort();
}

static inline __attribute__((always_inline)) void inlined_step(int n)
{
    sink += n;
    crash_now(n);
}

__attribute__((noinline)) void app_main(void)
{
    inlined_step(3);
}

int main(void)
{
    app_main();
    return 0;
}
"""


@pytest.fixture(scope="session")
def crash_elf(tmp_path_factory) -> dict:
    """A host ELF built with gcc -g, code linked at 0x42000000 like the ESP32-S3's flash-mapped code.

    Returns {"elf": Path, "source": Path, "symbols": {name: address}} with addresses from `nm`.
    """
    import shutil
    import subprocess

    gcc = shutil.which("gcc")
    assert gcc, "gcc is needed to build the host ELF for decoding tests (apt-get install gcc)"
    root = tmp_path_factory.mktemp("crash")
    source = root / "crash.c"
    source.write_text(CRASH_C)
    elf = root / "crash.elf"
    subprocess.run([gcc, "-g", "-O1", "-no-pie", "-fno-pie", "-Wl,-Ttext-segment=0x42000000", "-o", str(elf),
                    str(source)], check=True, capture_output=True)
    nm = subprocess.run(["nm", str(elf)], check=True, capture_output=True, text=True).stdout
    symbols = {parts[2]: int(parts[0], 16) for parts in (ln.split() for ln in nm.splitlines()) if len(parts) == 3}
    return {"elf": elf, "source": source, "symbols": symbols}


# --- The real linux firmware, built once per test session (helper A; reused by the WebRTC tests) ---

@dataclass(frozen=True)
class LinuxFirmware:
    """A real linux build of firmware-src: `rtflash build --board linux --deps-dir ../shared/deps`,
    run through the installed `rtflash` script with the real ESP-IDF from ../shared.

    project: the rtflash project dir (cwd for `rtflash build/exec`); build_dir: project/build/linux;
    elf: the host executable; env: the environment the build ran with (real ESP-IDF active, component
    manager off); output: the build's output; started: time.time() before it; seconds: how long the
    (cold) build took."""

    project: Path
    build_dir: Path
    elf: Path
    env: dict
    output: str
    started: float
    seconds: float


@pytest.fixture(scope="session")
def linux_firmware(tmp_path_factory) -> LinuxFirmware:
    """Build the linux firmware ONCE per session (about a minute on 2 cores) into a session tmp dir;
    every test needing the real ELF reuses it (do not rebuild it in place with other options: copy
    the project, or build elsewhere). Skips only where ../shared is absent."""
    import subprocess
    import sys
    import time

    if not (SHARED_IDF / "tools" / "idf.py").is_file() or not (SHARED_DEPS / "libpeer").is_dir():
        pytest.skip(NO_SHARED)
    if not (idf_venv() / "bin" / "python").is_file():
        pytest.fail(f"ESP-IDF Python env missing at {idf_venv()}: run `bash .ci/run` once, or set RTFLASH_IDF_VENV")
    project = tmp_path_factory.mktemp("linux-firmware")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "OPENAI_", "WIFI_"))}
    env.update(real_idf_env())
    env["RTFLASH_CACHE_DIR"] = str(project / ".device-cache")
    exe = Path(sys.executable).parent / "rtflash"
    started = time.time()
    start = time.perf_counter()
    done = subprocess.run([str(exe), "build", "--board", "linux", "--deps-dir", str(SHARED_DEPS)], cwd=project,
                          env=env, capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.perf_counter() - start
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"linux firmware build failed (exit {done.returncode}):\n{output[-3000:]}")
    build_dir = project / "build" / "linux"
    return LinuxFirmware(project, build_dir, build_dir / "rtflash_firmware.elf", env, output, started, seconds)


# --- CI: the real tier must run, not skip -------------------------------------------------------------
# .ci/run sets RTFLASH_REAL_TIER=1 when ../shared/esp-idf is there; a test that then skips for want of
# ../shared (a broken path, a missing env) fails the run instead of passing quietly.
_SHARED_SKIPS: list[str] = []


def pytest_runtest_logreport(report) -> None:
    if report.skipped and os.environ.get("RTFLASH_REAL_TIER") == "1" and str(SHARED) in str(report.longrepr):
        _SHARED_SKIPS.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus) -> None:
    if _SHARED_SKIPS:
        session.exitstatus = 1
        print(f"\nreal tier: {len(_SHARED_SKIPS)} test(s) skipped for want of {SHARED} though .ci/run found it: "
              + ", ".join(_SHARED_SKIPS[:5]))


# --- a real PostgreSQL server for the relay's PostgreSQL store (testkit/postgres.py) -------------------


@pytest.fixture(scope="session")
def pg_server():
    """Debian's PostgreSQL server on 127.0.0.1 in a temp dir for the session, stopped after. .ci/run installs
    it; without it (a developer machine) the PostgreSQL tests skip saying so, except under .ci/run."""
    from testkit.postgres import PgServer, pg_bindir

    bindir = pg_bindir()
    need_installed(bindir is not None, "PostgreSQL server binaries not installed (apt-get install postgresql)")
    server = PgServer(bindir).start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh database on the session's PostgreSQL server: its postgresql:// URL (password included)."""
    return pg_server.database()
