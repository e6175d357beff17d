"""Per ESP32-S3 board: the real `idf.py reconfigure` through rtflash, then every firmware and pinned-dep
translation unit under both Xtensa front ends (testkit/xtensa_check.py), with counts and seconds.

Needs ../shared (real ESP-IDF, deps), .cache/idf-venv and .cache/pio-offline (bash .ci/run), clang-22
and gcc-xtensa-lx106. Run: .venv/bin/python bench/xtensa_compile.py [BOARD ...] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BOARDS = ("sonatino", "freenove-s3", "atoms3r-echo", "esp32-s3-box-3")


def main() -> int:
    from testkit import xtensa_check as xc
    from testkit.shared import SHARED_DEPS, SHARED_IDF, pio_offline_dir, real_idf_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("boards", nargs="*", default=list(BOARDS))
    parser.add_argument("--jobs", type=int, default=xc.default_jobs())
    args = parser.parse_args()
    if not (SHARED_IDF / "tools" / "idf.py").is_file():
        print(f"needs {SHARED_IDF} (a real ESP-IDF v5.5.5): absent here", file=sys.stderr)
        return 2
    env = real_idf_env()
    os.environ.update(env, PATH=f"{xc.standin_bin(pio_offline_dir())}:{env['PATH']}", RTFLASH_NO_CCACHE="1")
    os.environ.pop("IDF_TARGET", None)
    print(f"{os.cpu_count()} cores, {args.jobs} compiles at a time; gcc = stand-in lx106 GCC 12 -S, "
          f"clang = {xc.CLANG} --target=xtensa -fsyntax-only; int32_t as long in both")
    header = f"{'board':16} {'group':14} {'TUs':>4}  {'gcc ok/excused/failed':>22}  {'clang ok/excused/failed':>24}"
    failed_total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for board in args.boards:
            start = time.perf_counter()
            commands = xc.reconfigure(board, Path(tmp) / board, SHARED_DEPS)
            configure_s = time.perf_counter() - start
            units = xc.select_units(commands, REPO / "firmware-src", SHARED_DEPS)
            seconds = {}
            results = []
            for frontend in xc.FRONTENDS:
                start = time.perf_counter()
                results += xc.check_units(units, [frontend], jobs=args.jobs)
                seconds[frontend] = time.perf_counter() - start
            table = xc.tally(results)
            print(f"\n{board}: reconfigure {configure_s:.1f} s, {len(units)} TUs; gcc {seconds['gcc']:.1f} s, "
                  f"clang {seconds['clang']:.1f} s")
            print(header)
            for group in xc.GROUPS:
                cells = [table.get((group, f)) for f in xc.FRONTENDS]
                if not any(cells):
                    continue
                gcc, clang = (f"{c.clean}/{c.excused}/{c.failed}" if c else "-" for c in cells)
                print(f"{'':16} {group:14} {cells[0].tus if cells[0] else 0:>4}  {gcc:>22}  {clang:>24}")
            for r in results:
                for line in r.unexcused:
                    print(f"  FAILED {r.frontend}: {line}")
                    failed_total += 1
    print(f"\nunexcused errors: {failed_total}; excuses in the reviewed list: {len(xc.EXCUSES)}")
    return 1 if failed_total else 0


if __name__ == "__main__":
    sys.exit(main())
