"""rtflash.resources: shipped data dirs and the per-user paths every module shares."""

from __future__ import annotations

from pathlib import Path

from rtflash.resources import boards_dir, user_path


def test_user_path_override_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_path("cache", "deps", "X_OVERRIDE", {"X_OVERRIDE": "~/mine"}) == tmp_path / "mine"
    assert user_path("cache", "deps", "X_OVERRIDE", {"XDG_CACHE_HOME": "/xdg"}) == Path("/xdg/rtflash/deps")
    assert user_path("config", "secrets.toml", "X_OVERRIDE", {}) == tmp_path / ".config" / "rtflash" / "secrets.toml"
    assert user_path("cache", "devices", "X_OVERRIDE", {}) == tmp_path / ".cache" / "rtflash" / "devices"


def test_boards_dir_holds_the_shipped_boards():
    assert (boards_dir() / "sonatino.toml").is_file()
