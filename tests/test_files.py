"""Atomic writes: no half-written file, no touched mtime on unchanged content."""

from __future__ import annotations

import os

import pytest

from rtflash.errors import ConfigError
from rtflash.files import write_atomic, write_if_changed


def test_write_atomic_mode_and_no_temp_left(tmp_path):
    target = tmp_path / "d" / "secret.bin"
    write_atomic(target, b"abc", mode=0o600)
    assert target.read_bytes() == b"abc"
    assert (target.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["secret.bin"]


def test_write_if_changed(tmp_path):
    target = tmp_path / "f"
    assert write_if_changed(target, "one") is True
    os.utime(target, ns=(1, 1))
    assert write_if_changed(target, "one") is False
    assert target.stat().st_mtime_ns == 1
    assert write_if_changed(target, "two") is True and target.read_text() == "two"


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "f"
    target.write_text("good")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(ConfigError, match="No space left on device"):
        write_atomic(target, "new")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_plain_files_get_umask_mode_and_keep_theirs(tmp_path):
    """Only secrets are 0600: rendered config and dist files get what a plain write would give."""
    old = os.umask(0o022)
    try:
        target = tmp_path / "sdkconfig.defaults"
        write_atomic(target, "A=1\n")
        assert (target.stat().st_mode & 0o777) == 0o644
        target.chmod(0o640)
        write_atomic(target, "A=2\n")
        assert (target.stat().st_mode & 0o777) == 0o640
    finally:
        os.umask(old)
