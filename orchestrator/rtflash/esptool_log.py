"""esptool's output, routed per thread: each flashing thread's lines and progress go to its device.

esptool (through esp-pylib) logs to one process-wide logger; with several devices flashed at once
from threads, a logger that looks up the current thread's sinks keeps the rows apart. Progress
callbacks are also where a Ctrl-C reaches a worker thread: `cancel()` makes the next block raise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

from rtflash.errors import RtflashError


class Cancelled(RtflashError):
    """Ctrl-C: the write was stopped between two blocks (exit status 130, as for SIGINT)."""

    exit_code = 130


_local = threading.local()
_cancel = threading.Event()


def cancel() -> None:
    """Ask running writes to stop at their next block."""
    _cancel.set()


def clear_cancel() -> None:
    _cancel.clear()


@contextmanager
def sinks(on_progress: Callable[[str, int, int], None] | None, on_line: Callable[[str], None] | None):
    """Route this thread's esptool output to these callbacks while the block runs."""
    _local.on_progress, _local.on_line = on_progress, on_line
    try:
        with _Installed():
            yield
    finally:
        _local.on_progress = _local.on_line = None


def _logger():
    """An esp-pylib logger that sends each thread's esptool output to that thread's callbacks."""
    from esp_pylib.logger import EspLogBase

    class DeviceLog(EspLogBase):
        def _emit(self, *args) -> None:
            sink = getattr(_local, "on_line", None)
            if sink and args:
                sink(" ".join(str(a) for a in args).strip())

        def print(self, *args, **kwargs) -> None:
            self._emit(*args)

        def err(self, *args, suggestion=None) -> None:
            self._emit(*args)

        def warn(self, *args, suggestion=None) -> None:
            self._emit(*args)

        def note(self, *args) -> None:
            self._emit(*args)

        def hint(self, *args) -> None:
            self._emit(*args)

        def debug(self, *args) -> None:
            pass

        def set_verbosity(self, mode) -> None:
            pass

        def progress_bar(self, cur_iter, total_iters, prefix="", suffix="", bar_length=30) -> None:
            if _cancel.is_set():
                raise Cancelled("interrupted")
            sink = getattr(_local, "on_progress", None)
            if sink:
                sink(prefix.strip(), cur_iter, total_iters)

    return DeviceLog()


class _Installed:
    """Our logger installed while any thread flashes; esptool's own restored after the last one."""

    _lock = threading.Lock()
    _depth = 0
    _saved = None

    def __enter__(self):
        from esp_pylib.logger import EspLog

        with self._lock:
            if _Installed._depth == 0:
                _Installed._saved = EspLog.instance
                EspLog.instance = _logger()
            _Installed._depth += 1

    def __exit__(self, *exc) -> None:
        from esp_pylib.logger import EspLog

        with self._lock:
            _Installed._depth -= 1
            if _Installed._depth == 0:
                EspLog.instance = _Installed._saved
