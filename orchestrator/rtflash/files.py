"""Safe file writes: never leave a half-written file, never touch an unchanged one.

ESP-IDF reconfigures when an input's mtime changes, so an unchanged rendered file must keep its
mtime; and a crash or a full disk mid-write must leave the previous file intact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rtflash.errors import ConfigError


def _default_mode(path: Path) -> int:
    """The mode a plain open() would give: the existing file's, else 0666 less the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """Write `data` to `path` through a temp file in the same directory and an atomic rename.

    `mode` is for secrets (0600); without it the file gets the mode a plain write would give.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    mode = _default_mode(path) if mode is None else mode
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write {path.parent}: {exc.strerror}; choose a writable directory "
                          "(check the path and its permissions)") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}; free space or fix permissions") from None


def write_if_changed(path: Path, data: bytes | str, mode: int | None = None) -> bool:
    """Write only when the content differs; return True when the file was (re)written."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    try:
        if path.read_bytes() == payload:
            return False
    except OSError:
        pass
    write_atomic(path, payload, mode)
    return True
