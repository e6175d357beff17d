"""Where the shipped data lives: the repo checkout's top-level dirs, or the copies inside the wheel.

The firmware sources are what a user edits: after `pip install .` from a checkout, a build run in
that checkout (the CLI's -C, else the working directory, or any folder below it) builds the
checkout's firmware-src/, not the copy the wheel installed (`use_project`, `firmware_source`).
"""

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


_project: dict[str, Path] = {}


def use_project(project_dir: Path) -> None:
    """Set by the CLI (-C DIR, else the working directory): where to look for an rtflash checkout."""
    _project["dir"] = Path(project_dir)


def checkout_of(start: Path) -> Path | None:
    """The rtflash checkout at or above `start`: a pyproject.toml naming the project rtflash beside a
    firmware-src/ with its CMakeLists.txt."""
    import re

    for folder in (start, *start.parents):
        if (folder / "firmware-src" / "CMakeLists.txt").is_file():
            try:
                text = (folder / "pyproject.toml").read_text(encoding="utf-8")
            except OSError:
                continue
            if re.search(r'^name\s*=\s*"rtflash"\s*$', text, re.MULTILINE):
                return folder
    return None


def firmware_source() -> tuple[Path, str]:
    """The firmware tree to build and why that one: the checkout around the project, else the one
    this rtflash runs from (a checkout, or the installed copy)."""
    start = _project.get("dir")
    found = checkout_of(start.resolve()) if start is not None else None
    if found is not None:
        return found / "firmware-src", f"the checkout at {found}"
    shipped = data_dir("firmware")
    if shipped.parent == _REPO:
        return shipped, f"rtflash's own checkout at {_REPO}"
    return shipped, "the copy installed with rtflash: no checkout at or above the project dir"


def firmware_dir() -> Path:
    return firmware_source()[0]


def user_path(kind: str, leaf: str, override: str, env: Mapping[str, str] | None = None) -> Path:
    """A per-user rtflash path: $`override` when set, else $XDG_<KIND>_HOME/rtflash/`leaf`
    (kind "cache" or "config"; ~/.cache or ~/.config without XDG)."""
    env = os.environ if env is None else env
    if env.get(override):
        return Path(env[override]).expanduser()
    base = env.get(f"XDG_{kind.upper()}_HOME")
    return (Path(base).expanduser() if base else Path.home() / f".{kind}") / "rtflash" / leaf
