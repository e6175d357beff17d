"""First run of the PlatformIO backend offline (issue 16): how long until the user learns what is missing,
`rtflash build --backend pio` against bare `pio run` on the same rendered project, in each state.

States, each in a fresh PLATFORMIO_CORE_DIR made here from .cache/pio-offline/core (needs ../shared and
`../shared/pio-offline/make-packages.sh .cache/pio-offline`):
  no-platform        empty core
  no-packages        espressif32 6.13.0 and SCons installed, none of its packages
  no-components      platform + packages (local, RTFLASH_PIO_PACKAGES overlay) + the builder's Python
                     env + libpeer in the deps cache, component manager on, no --deps-dir: the ESP
                     Component Registry is needed
  no-pypi            platform + packages, no Python env; pip's index unreachable (PIP_INDEX_URL at a
                     closed 127.0.0.1 port), --deps-dir given
Bare `pio run` retries for about a minute per state (run once each; never in tests).
Run: .venv/bin/python bench/pio_first_run.py [STATE ...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OFFLINE = Path(os.environ.get("RTFLASH_PIO_OFFLINE") or REPO / ".cache" / "pio-offline")
DEPS = REPO.parent / "shared" / "deps"
BOARD = "sonatino"
STATES = ("no-platform", "no-packages", "no-components", "no-pypi")
CLOSED_INDEX = "http://127.0.0.1:9/simple"


def make_core(root: Path, platform: bool, scons: bool, penv: bool) -> Path:
    core = root / "core"
    for sub in ("platforms", "packages", "penv"):
        (core / sub).mkdir(parents=True)
    if platform:
        shutil.copytree(OFFLINE / "core" / "platforms" / "espressif32", core / "platforms" / "espressif32")
    if scons:
        (core / "packages" / "tool-scons").symlink_to(OFFLINE / "core" / "packages" / "tool-scons")
    if penv:
        for venv in (OFFLINE / "core" / "penv").glob(".espidf-*"):
            (core / "penv" / venv.name).symlink_to(venv)
    return core


def setup(state: str, root: Path) -> tuple[dict[str, str], list[str]]:
    """(environment, extra rtflash args) for a state."""
    env = {**os.environ, "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "no",
           "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "3650"}
    for var in ("RTFLASH_PIO_PACKAGES", "IDF_COMPONENT_MANAGER", "RTFLASH_DEPS_DIR", "PIP_INDEX_URL"):
        env.pop(var, None)
    args: list[str] = []
    if state == "no-platform":
        core = make_core(root, False, False, False)
    elif state == "no-packages":
        core = make_core(root, True, True, False)
    elif state == "no-components":
        core = make_core(root, True, True, True)
        env["RTFLASH_PIO_PACKAGES"] = str(OFFLINE / "packages")
        cache = root / "deps-cache"  # the git deps already fetched: only the registry is missing
        cache.mkdir()
        (cache / "libpeer").symlink_to(DEPS / "libpeer")
        env["RTFLASH_DEPS_CACHE"] = str(cache)
    else:
        core = make_core(root, True, True, False)
        env["RTFLASH_PIO_PACKAGES"] = str(OFFLINE / "packages")
        env["PIP_INDEX_URL"] = CLOSED_INDEX
        args = ["--deps-dir", str(DEPS)]
    env["PLATFORMIO_CORE_DIR"] = str(core)
    return env, args


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[float, int, str]:
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        rc, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = -1, f"timed out after {timeout:.0f} s: {exc.output or ''}"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    said = next((ln for ln in lines if ln.startswith("error:")), None)
    if said is None:
        said = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
    return time.perf_counter() - start, rc, said


def measure(state: str) -> None:
    rtflash = shutil.which("rtflash", path=str(Path(sys.executable).parent)) or "rtflash"
    pio = shutil.which("pio", path=str(Path(sys.executable).parent)) or "pio"
    with tempfile.TemporaryDirectory(prefix=f"pio-{state}-") as tmp:
        root = Path(tmp)
        env, args = setup(state, root)
        work = root / "project"
        work.mkdir()
        t_rt, rc_rt, said_rt = run([rtflash, "build", "--board", BOARD, "--backend", "pio", *args], work, env, 900)
        project = work / "build" / BOARD / "project"
        config = project / ("platformio-offline.ini" if "RTFLASH_PIO_PACKAGES" in env else "platformio.ini")
        bare_env = dict(env)
        if args:
            bare_env["RTFLASH_DEPS_DIR"] = str(DEPS)
            bare_env["IDF_COMPONENT_MANAGER"] = "0"
        t_pio, rc_pio, said_pio = run([pio, "run", "-d", str(project), "-c", str(config), "-e", BOARD],
                                      work, bare_env, 900)
    print(f"{state:14s} rtflash {t_rt:6.1f} s (exit {rc_rt})  bare pio run {t_pio:6.1f} s (exit {rc_pio})")
    print(f"{'':14s}   rtflash: {said_rt[:400]}")
    print(f"{'':14s}   pio:     {said_pio[:400]}", flush=True)


def main() -> None:
    if not (OFFLINE / "core" / "platforms" / "espressif32").is_dir():
        raise SystemExit(f"{OFFLINE} missing: run ../shared/pio-offline/make-packages.sh {OFFLINE}")
    for state in sys.argv[1:] or STATES:
        if state not in STATES:
            raise SystemExit(f"unknown state {state}; one of {', '.join(STATES)}")
        measure(state)


if __name__ == "__main__":
    main()
