"""Artifacts: flasher_args.json reading, fit checks, and dist/<board>/ written all-or-nothing."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from rtflash.artifacts import check_fits, collect_dist, load_flasher_args
from rtflash.boards import load_catalog
from rtflash.builder import build_board
from rtflash.errors import ConfigError
from rtflash.settings import Settings


@pytest.fixture
def built(project, fake_idf):
    return build_board(load_catalog().get("esp32-s3-box-3"), Settings(), project, "idf")


def test_flasher_args_read(built):
    again = load_flasher_args(built.build_dir, "esp32-s3-box-3")
    assert again == built
    assert [hex(r.offset) for r in again.regions] == ["0x0", "0x8000", "0xf000", "0x20000"]


def test_missing_flasher_args(tmp_path):
    with pytest.raises(ConfigError, match="flasher_args.json not found; build first"):
        load_flasher_args(tmp_path, "sonatino")


def test_dist_contents_match_artifacts(built, project):
    (built.build_dir / "nvs.bin").write_bytes(b"secret-ish")
    files = collect_dist(built, project / "dist" / "box")
    names = {f.name for f in files}
    assert {"manifest.json", "SHA256SUMS", "size.json", "esp32-s3-box-3-factory.bin", "app-0x20000.bin"} <= names
    assert not any("nvs" in n for n in names)
    out = project / "dist" / "box"
    for line in (out / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    merged = (out / "esp32-s3-box-3-factory.bin").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["builds"][0] == {"chipFamily": "ESP32-S3", "parts": [{"path": "esp32-s3-box-3-factory.bin",
                                                                          "offset": 0}]}
    for region in built.regions:
        data = region.path.read_bytes()
        if region.name == "bootloader":
            assert merged[region.offset + 16:region.offset + len(data) - 32] == data[16:-32]  # header patched
        else:
            assert merged[region.offset:region.offset + len(data)] == data


def test_failed_dist_keeps_previous(built, project, monkeypatch):
    out = project / "dist" / "box"
    collect_dist(built, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ConfigError, match="No space left on device.*previous artifacts"):
        collect_dist(built, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in out.parent.iterdir()] == ["box"]


def test_app_larger_than_partition(built, project):
    csv = project / "small.csv"
    csv.write_text("nvs,data,nvs,0x9000,0x6000\nfactory,app,factory,0x20000,0x10000\n")
    with pytest.raises(ConfigError, match=r"partition 'factory' holds 0x10000 \(over by"):
        check_fits(built, csv)
