"""`rtflash ci`: build a set of boards into `dist/`, secret-free, one board's failure not stopping others.

The build and dist-collection steps are passed in (the CLI wires the real ones), so this module only
decides what to build, in which order, and writes the index and the Markdown summary.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rtflash.boards import Board, Catalog
from rtflash.errors import ConfigError, RtflashError
from rtflash.files import write_atomic
from rtflash.redact import redact


@dataclass(frozen=True)
class BoardResult:
    board: str
    chip: str
    ok: bool
    seconds: float
    error: str = ""
    files: tuple[str, ...] = field(default_factory=tuple)  # relative to the dist dir


@dataclass(frozen=True)
class CiReport:
    out_dir: Path
    results: tuple[BoardResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def select_boards(catalog: Catalog, spec: str) -> list[Board]:
    """`all` or a comma list; an unknown name raises the catalog's error (with a suggestion)."""
    names = catalog.names() if spec.strip() in ("", "all") else [n.strip() for n in spec.split(",") if n.strip()]
    return [catalog.get(name) for name in dict.fromkeys(names)]


def matrix(boards: Iterable[Board]) -> dict:
    """GitHub Actions matrix: one job per board, with the ESP-IDF target the container must build for."""
    return {"include": [{"board": b.name, "target": b.idf_target, "preview": b.is_linux} for b in boards]}


def check_out_dir(out_dir: Path) -> None:
    """Fail before building anything when the output directory cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".rtflash-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to --out {out_dir}: {exc.strerror}; choose a writable directory") from None


def run_ci(boards: list[Board], out_dir: Path, build: Callable[[Board], object],
           collect: Callable[[object, Path], Iterable[Path]],
           on_result: Callable[[BoardResult], None] | None = None) -> CiReport:
    """Build and collect every board; write `index.json` and `summary.md` even when some failed."""
    check_out_dir(out_dir)
    results = []
    for board in boards:
        start = time.perf_counter()
        try:
            artifacts = build(board)
            files = tuple(sorted(str(Path(p).relative_to(out_dir)) for p in collect(artifacts, out_dir / board.name)))
            result = BoardResult(board.name, board.chip, True, time.perf_counter() - start, files=files)
        except RtflashError as exc:
            result = BoardResult(board.name, board.chip, False, time.perf_counter() - start, error=redact(str(exc)))
        results.append(result)
        if on_result:
            on_result(result)
    report = CiReport(out_dir, tuple(results))
    write_atomic(out_dir / "index.json", json.dumps(index(report), indent=2) + "\n")
    write_atomic(out_dir / "summary.md", summary_markdown(report))
    return report


def index(report: CiReport) -> dict:
    return {"ok": report.ok, "boards": [{**asdict(r), "seconds": round(r.seconds, 2), "files": list(r.files)}
                                        for r in report.results]}


def summary_markdown(report: CiReport) -> str:
    """A table for $GITHUB_STEP_SUMMARY."""
    lines = ["## rtflash firmware builds", "", "| board | target | result | time | files |",
             "|---|---|---|---|---|"]
    for r in report.results:
        state = "ok" if r.ok else f"failed: {r.error.replace('|', '/')}"
        lines.append(f"| {r.board} | {r.chip} | {state} | {r.seconds:.1f} s | {len(r.files)} |")
    passed = sum(r.ok for r in report.results)
    lines += ["", f"{passed} of {len(report.results)} boards built."]
    return "\n".join(lines) + "\n"
