"""`rtflash ci` core: board selection, matrix, per-board isolation, index and summary."""

from __future__ import annotations

import json

import pytest

from rtflash.boards import load_catalog
from rtflash.ci import check_out_dir, matrix, run_ci, select_boards
from rtflash.errors import BoardError, ConfigError, ToolFailed


def test_select_all_and_list():
    catalog = load_catalog()
    assert [b.name for b in select_boards(catalog, "all")] == catalog.names()
    assert [b.name for b in select_boards(catalog, "sonatino, linux,sonatino")] == ["sonatino", "linux"]
    with pytest.raises(BoardError, match="did you mean 'sonatino'"):
        select_boards(catalog, "sonatino,sonatno")


def test_matrix_shape():
    catalog = load_catalog()
    m = matrix(select_boards(catalog, "sonatino,linux"))
    assert m == {"include": [{"board": "sonatino", "target": "esp32s3", "preview": False},
                             {"board": "linux", "target": "linux", "preview": True}]}


def test_failing_board_does_not_stop_others(tmp_path):
    boards = select_boards(load_catalog(), "sonatino,freenove-s3,linux")

    def build(board):
        if board.name == "freenove-s3":
            raise ToolFailed("idf.py build failed: main.c:3: error: boom")
        return board.name

    def collect(artifacts, out):
        out.mkdir(parents=True)
        (out / f"{artifacts}.bin").write_bytes(b"x")
        return [out / f"{artifacts}.bin"]

    seen = []
    report = run_ci(boards, tmp_path / "dist", build, collect, on_result=seen.append)
    assert not report.ok and [r.board for r in seen] == ["sonatino", "freenove-s3", "linux"]
    index = json.loads((tmp_path / "dist" / "index.json").read_text())
    assert [b["ok"] for b in index["boards"]] == [True, False, True]
    assert index["boards"][0]["files"] == ["sonatino/sonatino.bin"]
    assert "main.c:3: error: boom" in index["boards"][1]["error"]
    summary = (tmp_path / "dist" / "summary.md").read_text()
    assert "| freenove-s3 | esp32s3 | failed: idf.py build failed" in summary
    assert "2 of 3 boards built." in summary


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"cannot write to --out .*file/dist"):
        check_out_dir(blocker / "dist")
