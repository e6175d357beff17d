"""rtflash's own overhead on a build, over the bare build tool (issue 4; target <= 0.3 s on a no-op).

Uses the stand-in idf.py from tests/fake_tools (this machine has no ESP-IDF): the figure is what
rtflash adds (start-up, render check, argv, progress parsing, log, artifacts), since both runs pay
the same tool cost. With a real ESP-IDF on PATH, set RTFLASH_BENCH_REAL=1 to time the real idf.py.
Run: .venv/bin/python bench/build_overhead.py
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
RUNS = 7


def timed(argv, cwd, env) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    from tests.conftest import install_fake_idf

    exe = str(Path(sys.executable).parent / "rtflash")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "RTFLASH_NO_CCACHE": "1"}
        if not os.environ.get("RTFLASH_BENCH_REAL"):
            env.update(install_fake_idf(root / "tools"))
        project = root / "project"
        project.mkdir()
        full = timed([exe, "build", "--board", "sonatino"], project, env)
        rtflash_noop = statistics.median(timed([exe, "build", "--board", "sonatino"], project, env)
                                         for _ in range(RUNS))
        build_dir = project / "build" / "sonatino"
        firmware = REPO / "firmware-src"
        bare = [str(root / "tools" / "bin" / "idf.py"), "-C", str(firmware), "-B", str(build_dir),
                f"-DSDKCONFIG={build_dir / 'sdkconfig'}",
                f"-DSDKCONFIG_DEFAULTS={firmware / 'sdkconfig.defaults'};{build_dir / 'config' / 'sdkconfig.defaults'}",
                "build"]
        bare_noop = statistics.median(timed(bare, project, {**env, "IDF_TARGET": "esp32s3"}) for _ in range(RUNS))
        clean_full = timed([exe, "build", "--board", "sonatino", "--clean"], project, env)
        print(f"first full build (rtflash, stand-in tool)   {full * 1000:7.0f} ms")
        print(f"full build after --clean (rtflash)          {clean_full * 1000:7.0f} ms")
        print(f"no-op build: rtflash build                  {rtflash_noop * 1000:7.0f} ms (median of {RUNS})")
        print(f"no-op build: bare idf.py                    {bare_noop * 1000:7.0f} ms (median of {RUNS})")
        overhead = rtflash_noop - bare_noop
        print(f"rtflash overhead on a no-op build           {overhead * 1000:7.0f} ms  "
              f"({'ok' if overhead <= 0.3 else 'OVER'} target 300 ms)")


if __name__ == "__main__":
    main()
