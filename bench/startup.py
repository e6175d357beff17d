"""Start-up and render figures for the foundation (issue 2).

Prints the median wall time of `rtflash --help`, `rtflash boards` and `rtflash boards --json` (target
<= 120 ms each: rich, jinja2 and esptool are imported lazily), and the render time per board in
process (cold: all files written; warm: nothing changed). Run from the repo root with the project's venv:
`.venv/bin/python bench/startup.py` (another Python is told so in one line).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venv_check import require_rtflash

RUNS = 15
EXE = str(Path(sys.executable).parent / "rtflash")


def wall(argv: list[str], cwd: str) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, capture_output=True, check=False)  # doctor exits 1 on a bare machine
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    require_rtflash()
    if not Path(EXE).is_file():
        sys.exit(f"startup.py: no rtflash script next to {sys.executable}: pip install -e . in this venv")
    from rtflash.boards import load_catalog
    from rtflash.render import render_board
    from rtflash.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        base = wall([sys.executable, "-c", "pass"], tmp)
        print(f"python -c pass (interpreter floor)  {base * 1000:7.1f} ms")
        for args in (["--help"], ["boards"], ["boards", "--json"]):
            t = wall([EXE, *args], tmp)
            flag = "ok" if t <= 0.120 else "OVER 120 ms"
            print(f"rtflash {' '.join(args):<26} {t * 1000:7.1f} ms  {flag}")
        for args in (["render", "--board", "sonatino"], ["doctor"]):  # the founders' other two startup figures
            t = wall([EXE, *args], tmp)
            print(f"rtflash {' '.join(args):<26} {t * 1000:7.1f} ms")
        catalog = load_catalog()
        for name in catalog.names():
            board = catalog.get(name)
            out = Path(tmp) / "build" / name / "config"
            start = time.perf_counter()
            render_board(board, Settings(), out)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(20):
                render_board(board, Settings(), out)
            warm = (time.perf_counter() - start) / 20
            print(f"render {name:<16} cold {cold * 1000:6.1f} ms   unchanged {warm * 1000:6.2f} ms")


if __name__ == "__main__":
    main()
