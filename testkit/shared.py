"""Where the real ESP-IDF, the pinned deps and PlatformIO's offline packages are, and the stand-in idf.py.

One home for what tests (tests/conftest.py) and benches (bench/) both need; neither imports the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# The real ESP-IDF v5.5.5, the firmware's pinned sources and PlatformIO's offline packages sit beside
# the checkout in ../shared (CI has them; a user's clone does not). .ci/run sets up, inside the clone,
# the ESP-IDF Python env (.cache/idf-venv) and the PlatformIO packages (.cache/pio-offline); a
# developer may point RTFLASH_IDF_VENV / RTFLASH_PIO_OFFLINE elsewhere.
SHARED = REPO.parent / "shared"
SHARED_IDF = SHARED / "esp-idf"
SHARED_DEPS = SHARED / "deps"
SHARED_PIO = SHARED / "pio-offline"
CACHE = REPO / ".cache"
NO_SHARED = f"needs {SHARED} (a real ESP-IDF v5.5.5 and the pinned deps, as on CI); absent here"


def idf_venv() -> Path:
    return Path(os.environ.get("RTFLASH_IDF_VENV") or CACHE / "idf-venv")


def pio_offline_dir() -> Path:
    return Path(os.environ.get("RTFLASH_PIO_OFFLINE") or CACHE / "pio-offline")


def real_idf_env() -> dict[str, str]:
    """Environment that activates the real ESP-IDF from ../shared, as `export.sh` would."""
    venv = idf_venv()
    return {"IDF_PATH": str(SHARED_IDF), "IDF_PYTHON_ENV_PATH": str(venv), "IDF_PYTHON_CHECK_CONSTRAINTS": "no",
            "IDF_COMPONENT_MANAGER": "0",
            "PATH": os.pathsep.join([str(SHARED_IDF / "tools"), str(venv / "bin"), os.environ["PATH"]])}


FAKE_IDF = HERE / "fake_tools" / "idf.py"


def install_fake_idf(root: Path, version: str = "5.5.1") -> dict[str, str]:
    """A fake ESP-IDF install: IDF_PATH with tools/cmake/version.cmake and the stand-in idf.py on PATH.

    The stand-in runs with this venv's Python (the real idf.py runs in ESP-IDF's own Python env,
    which has esptool), through a small wrapper script.
    """
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
    # export.sh puts the target's cross compiler on PATH; rtflash looks for it there before it runs idf.py.
    # The stand-in idf.py compiles nothing, so this stand-in only answers --version as the real one does.
    gcc = bin_dir / "xtensa-esp32s3-elf-gcc"
    gcc.write_text('#!/bin/sh\n[ "$1" = --version ] && { echo "xtensa-esp32s3-elf-gcc (crosstool-NG '
                   'esp-14.2.0_20241119) 14.2.0"; exit 0; }\necho "stand-in: compiles nothing" >&2; exit 1\n')
    gcc.chmod(0o755)
    return {"IDF_PATH": str(root / "idf"), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def stop_process(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM (a clean exit), then SIGKILL if it has not gone within `grace` seconds; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def need_installed(ok: bool, why: str) -> None:
    """A tool `.ci/run` installs (apt, npm): when missing, the test fails under .ci/run (CI=true or
    RTFLASH_REAL_TIER=1: a skip there would hide a missing install step) and skips elsewhere, saying why."""
    if ok:
        return
    import pytest

    if os.environ.get("CI") == "true" or os.environ.get("RTFLASH_REAL_TIER") == "1":
        pytest.fail(f"{why} (.ci/run installs it)")
    pytest.skip(f"{why}: run `bash .ci/run` once")
