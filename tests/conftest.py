"""Shared fixtures. Each helper module's own fixtures live beside its tests unless shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _clean_redaction():
    """Every test starts with no registered secrets."""
    from orchestrator import redact

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
        from orchestrator.cli import main

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


FAKE_IDF = REPO / "tests" / "fake_tools" / "idf.py"


def install_fake_idf(root: Path, version: str = "5.5.1") -> dict[str, str]:
    """A fake ESP-IDF install: IDF_PATH with tools/cmake/version.cmake and the stand-in idf.py on PATH.

    The stand-in runs with this venv's Python (the real idf.py runs in ESP-IDF's own Python env,
    which has esptool), through a small wrapper script.
    """
    import sys

    major, minor, patch = version.split(".")
    cmake = root / "idf" / "tools" / "cmake"
    cmake.mkdir(parents=True, exist_ok=True)
    (cmake / "version.cmake").write_text(
        f"set(IDF_VERSION_MAJOR {major})\nset(IDF_VERSION_MINOR {minor})\nset(IDF_VERSION_PATCH {patch})\n")
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "idf.py"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE_IDF} \"$@\"\n")
    wrapper.chmod(0o755)
    return {"IDF_PATH": str(root / "idf"), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


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
    """Start emulated ESP32-S3 ROM bootloaders (tests/esp_rom_emulator.py): `emulators(**chip_kw)`."""
    from tests.esp_rom_emulator import PtyEmulator, SocketEmulator

    started = []

    def start(pty: bool = False, **kw):
        emu = (PtyEmulator if pty else SocketEmulator)(**kw).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.close()
