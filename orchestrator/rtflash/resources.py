"""Where the shipped data lives: the repo checkout's top-level dirs, or the copies inside the wheel."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]  # orchestrator/rtflash/resources.py -> repo
_NAMES = {"boards": "boards", "templates": "templates", "firmware": "firmware-src"}


@cache
def data_dir(kind: str) -> Path:
    """Directory of shipped `kind` data ("boards", "templates" or "firmware")."""
    top = _REPO / _NAMES[kind]
    if (_REPO / "pyproject.toml").is_file() and top.is_dir():
        return top
    import importlib.util

    spec = importlib.util.find_spec(f"rtflash._data.{kind}")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"rtflash data '{kind}' is not installed; reinstall rtflash")
    return Path(list(spec.submodule_search_locations)[0])


def boards_dir() -> Path:
    return data_dir("boards")


def templates_dir() -> Path:
    return data_dir("templates")


def firmware_dir() -> Path:
    return data_dir("firmware")


def user_path(kind: str, leaf: str, override: str, env: Mapping[str, str] | None = None) -> Path:
    """A per-user rtflash path: $`override` when set, else $XDG_<KIND>_HOME/rtflash/`leaf`
    (kind "cache" or "config"; ~/.cache or ~/.config without XDG)."""
    env = os.environ if env is None else env
    if env.get(override):
        return Path(env[override]).expanduser()
    base = env.get(f"XDG_{kind.upper()}_HOME")
    return (Path(base).expanduser() if base else Path.home() / f".{kind}") / "rtflash" / leaf
