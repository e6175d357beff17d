"""Where the shipped data lives: the repo checkout's top-level dirs, or the copies inside the wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_NAMES = {"boards": "boards", "templates": "templates", "firmware": "firmware-src"}


@cache
def data_dir(kind: str) -> Path:
    """Directory of shipped `kind` data ("boards", "templates" or "firmware")."""
    top = _REPO / _NAMES[kind]
    if (_REPO / "pyproject.toml").is_file() and top.is_dir():
        return top
    import importlib.util

    spec = importlib.util.find_spec(f"orchestrator._data.{kind}")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"rtflash data '{kind}' is not installed; reinstall rtflash")
    return Path(list(spec.submodule_search_locations)[0])


def boards_dir() -> Path:
    return data_dir("boards")


def templates_dir() -> Path:
    return data_dir("templates")


def firmware_dir() -> Path:
    return data_dir("firmware")
