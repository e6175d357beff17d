"""rtflash's own overhead on a build, over the bare build tool (issues 4 and 12; target <= 0.3 s on a no-op).

With ../shared present (the real ESP-IDF v5.5.5 and the pinned deps, as on CI) it builds the REAL
linux firmware, side by side in one run:
  - cold build: `rtflash build --board linux --deps-dir ../shared/deps` in one project, and bare
    `idf.py` with the very argv and environment rtflash uses (IdfBackend.argv / build_env) in a second
    project rendered the same way: the same tree, the same tool, only rtflash's layer differs;
  - no-op build: both again on rtflash's build dir (median of RUNS), and the difference, which is what
    rtflash itself adds (start-up, render check, argv, progress parsing, log, artifacts).
Without ../shared it falls back to the stand-in idf.py of testkit/fake_tools (board sonatino).

`--upstream-sdk` (issue 24) instead builds a copy of ../shared/upstream-sdk (the OpenAI Realtime SDK)
for linux: `rtflash build --board linux --firmware COPY --bake-secrets` against bare
`idf.py -C COPY2 -B COPY2/build -DIDF_TARGET=linux --preview build` on a second copy, as the SDK's
README has it, with the same environment (ESP-IDF, and a canary OPENAI_API_KEY the SDK's CMake bakes
in). rtflash's extra work on a no-op: its start-up, the private copy's refresh (a stat of each of DIR's
~3500 files), the board layer render, the log.
Run: .venv/bin/python bench/build_overhead.py [--upstream-sdk]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RUNS = 5


def timed(argv, cwd, env) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, argv[:4]))} ... failed ({done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}")
    return time.perf_counter() - start


def bare_argv(board_name: str, project: Path, deps: Path | None) -> tuple[list[str], dict[str, str]]:
    """Exactly what rtflash runs for this project (rendered first, as rtflash does)."""
    from rtflash.boards import load_catalog
    from rtflash.builder.idf import IdfBackend, build_env
    from rtflash.render import ensure_rendered
    from rtflash.settings import Settings

    board = load_catalog().get(board_name)
    rendered = ensure_rendered(board, Settings(), project)
    return IdfBackend().argv(board, project, rendered.out_dir, deps), build_env(board, deps)


def upstream_sdk() -> None:
    """The --upstream-sdk bench (see the module doc)."""
    import shutil

    from testkit.shared import SHARED, SHARED_IDF, idf_venv, real_idf_env

    sdk = SHARED / "upstream-sdk"
    if not (sdk / "CMakeLists.txt").is_file() or not (SHARED_IDF / "tools" / "idf.py").is_file() \
            or not (idf_venv() / "bin" / "python").is_file():
        raise SystemExit("needs ../shared/upstream-sdk, ../shared/esp-idf and the ESP-IDF Python env (bash .ci/run)")
    exe = str(Path(sys.executable).parent / "rtflash")
    key = "sk-" + "bench-canary-" + "0123456789"
    with tempfile.TemporaryDirectory(prefix="rtflash-bench-sdk-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "IDF_"))
               and k not in ("WIFI_SSID", "WIFI_PASSWORD", "OPENAI_API_KEY")}
        env.update(real_idf_env(), RTFLASH_NO_CCACHE="1", RTFLASH_CACHE_DIR=str(root / "device-cache"),
                   RTFLASH_SECRETS_FILE=str(root / "none.toml"))
        ours_sdk, bare_sdk = root / "sdk-rtflash" / "openai-realtime-embedded-sdk", root / "sdk-bare"
        for dest in (ours_sdk, bare_sdk):
            shutil.copytree(sdk, dest, symlinks=True)
        project = root / "project"
        project.mkdir()
        build = [exe, "build", "--board", "linux", "--firmware", str(ours_sdk), "--bake-secrets"]
        ours_env = {**env, "RTFLASH_OPENAI_API_KEY": key}
        os.environ.update(env)  # idf_py_argv finds idf.py on PATH as rtflash does
        from rtflash.builder.idf import idf_py_argv

        bare = [*idf_py_argv(), "-C", str(bare_sdk), "-B", str(bare_sdk / "build"), "-DIDF_TARGET=linux", "--preview",
                "build"]
        bare_env = {**env, "OPENAI_API_KEY": key}
        cold_rtflash = timed(build, project, ours_env)
        cold_bare = timed(bare, bare_sdk, bare_env)
        noop_rtflash = statistics.median(timed(build, project, ours_env) for _ in range(RUNS))
        noop_bare = statistics.median(timed(bare, bare_sdk, bare_env) for _ in range(RUNS))
        files = sum(1 for _ in ours_sdk.rglob("*"))
        print(f"upstream SDK (464a9f0, {files} entries) for linux with the real ESP-IDF v5.5.5")
        print(f"{'':34}{'rtflash build':>15}{'bare idf.py':>14}{'rtflash adds':>15}")
        print(f"{'cold build':34}{cold_rtflash:>13.2f} s{cold_bare:>12.2f} s{cold_rtflash - cold_bare:>13.2f} s")
        print(f"{f'no-op build (median of {RUNS})':34}{noop_rtflash:>13.2f} s{noop_bare:>12.2f} s"
              f"{noop_rtflash - noop_bare:>13.2f} s")


def main() -> None:
    if "--upstream-sdk" in sys.argv[1:]:
        upstream_sdk()
        return
    from testkit.shared import SHARED_DEPS, SHARED_IDF, idf_venv, install_fake_idf, real_idf_env

    real = (SHARED_IDF / "tools" / "idf.py").is_file() and (idf_venv() / "bin" / "python").is_file()
    exe = str(Path(sys.executable).parent / "rtflash")
    with tempfile.TemporaryDirectory(prefix="rtflash-bench-") as tmp:
        root = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RTFLASH_", "IDF_"))}
        env["RTFLASH_NO_CCACHE"] = "1"
        env["RTFLASH_CACHE_DIR"] = str(root / "device-cache")
        if real:
            env.update(real_idf_env())
            board, deps, tool = "linux", SHARED_DEPS, "real ESP-IDF v5.5.5, linux firmware"
        else:
            env.update(install_fake_idf(root / "tools"))
            board, deps, tool = "sonatino", None, "stand-in idf.py (no ../shared here)"
        os.environ.update(env)  # bare_argv resolves idf.py from PATH / IDF_PATH as rtflash does
        build = [exe, "build", "--board", board, *(["--deps-dir", str(deps)] if deps else [])]
        ours, theirs = root / "rtflash", root / "bare"
        ours.mkdir()
        theirs.mkdir()
        cold_rtflash = timed(build, ours, env)
        argv, extra = bare_argv(board, theirs, deps)
        cold_bare = timed(argv, theirs, {**env, **extra})
        noop_rtflash = statistics.median(timed(build, ours, env) for _ in range(RUNS))
        argv, extra = bare_argv(board, ours, deps)
        noop_bare = statistics.median(timed(argv, ours, {**env, **extra}) for _ in range(RUNS))
        overhead = noop_rtflash - noop_bare
        print(f"build of board {board} with the {tool}")
        print(f"{'':34}{'rtflash build':>15}{'bare idf.py':>14}{'rtflash adds':>15}")
        print(f"{'cold build':34}{cold_rtflash:>13.2f} s{cold_bare:>12.2f} s{cold_rtflash - cold_bare:>13.2f} s")
        print(f"{f'no-op build (median of {RUNS})':34}{noop_rtflash:>13.2f} s{noop_bare:>12.2f} s"
              f"{overhead:>13.2f} s  ({'ok' if overhead <= 0.3 else 'OVER'}: target <= 0.30 s)")


if __name__ == "__main__":
    main()
