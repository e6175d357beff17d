"""Keys: Ctrl-] quits; Ctrl-T then R resets, T toggles timestamps, F rebuilds and flashes, H helps.

`step` is the whole key logic as a pure function (tested alone); `KeyReader` only moves bytes from a
terminal in cbreak mode to a queue and always restores the terminal, whatever happens.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass

CTRL_RBRACKET, CTRL_T, CTRL_C = "\x1d", "\x14", "\x03"
MENU = {"r": "reset", "t": "timestamps", "f": "rebuild", "h": "help", "?": "help", "q": "quit", "x": "quit",
        "\x12": "reset", "\x06": "rebuild", "\x08": "help", CTRL_RBRACKET: "quit"}
HELP = ("keys: Ctrl-] quit | Ctrl-T R reset the device | Ctrl-T T timestamps on/off | "
        "Ctrl-T F rebuild + flash | Ctrl-T Ctrl-T send Ctrl-T | other keys go to the device")


@dataclass(frozen=True)
class Action:
    """What a key means: quit, reset, timestamps, rebuild, help, or send `data` to the device."""

    kind: str
    data: bytes = b""


def step(menu: bool, ch: str) -> tuple[bool, Action | None]:
    """One key in, (menu pending after it, action or None) out."""
    if menu:
        if ch == CTRL_T:
            return False, Action("send", ch.encode())
        kind = MENU.get(ch.lower())
        return False, Action(kind) if kind else None
    if ch == CTRL_T:
        return True, None
    if ch in (CTRL_RBRACKET, CTRL_C):
        return False, Action("quit")
    return False, Action("send", b"\r" if ch in "\r\n" else ch.encode("utf-8", "surrogateescape"))


def feed(menu: bool, text: str) -> tuple[bool, list[Action]]:
    """Several keys at once (a read may return more than one)."""
    actions = []
    for ch in text:
        menu, action = step(menu, ch)
        if action:
            if actions and action.kind == "send" and actions[-1].kind == "send":
                actions[-1] = Action("send", actions[-1].data + action.data)
            else:
                actions.append(action)
    return menu, actions


class KeyReader:
    """Reads stdin keys into `events` as ("key", Action) while active; does nothing when stdin is no TTY."""

    def __init__(self, events: queue.Queue, stdin=None) -> None:
        self.events = events
        self.stdin = stdin or sys.stdin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved = None
        self._menu = False
        try:
            self.fd = self.stdin.fileno()
            self.active = os.isatty(self.fd)
        except (AttributeError, OSError, ValueError):
            self.fd, self.active = -1, False

    def __enter__(self) -> KeyReader:  # noqa: PYI034 - Self needs Python 3.11
        if self.active:
            self._raw()
            self._thread = threading.Thread(target=self._run, name="rtflash-keys", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=1)
        self._restore()

    def _raw(self) -> None:
        """cbreak without signals or flow control, output processing kept (so log lines still end in CRLF)."""
        import termios

        self._saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[0] &= ~(termios.IXON | termios.ICRNL)  # iflag: Ctrl-S/Ctrl-Q and CR->NL off
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)  # lflag
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)

    def _restore(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    @contextmanager
    def suspended(self):
        """Give the terminal back while something else runs (the Ctrl-T F build)."""
        was_raw = self._saved is not None
        self._restore()
        try:
            yield
        finally:
            if was_raw and not self._stop.is_set():
                self._raw()

    def _run(self) -> None:
        import select

        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if not ready or self._saved is None:
                    continue
                data = os.read(self.fd, 64)
            except OSError:
                return
            if not data:
                return
            self._menu, actions = feed(self._menu, data.decode("utf-8", "surrogateescape"))
            for action in actions:
                self.events.put(("key", action))
