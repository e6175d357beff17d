"""Typed errors. The library raises these; only the CLI layer turns them into a message and exit code.

Every message is one line that names the file, field or port and says the fix.
"""

from __future__ import annotations


class RtflashError(Exception):
    """Base of every error rtflash reports to the user without a traceback."""

    exit_code = 1


class BoardError(RtflashError):
    """A board file is missing, malformed or invalid."""


class ConfigError(RtflashError):
    """Project settings (rtflash.toml), templates or rendered configuration are wrong."""


class CredentialError(RtflashError):
    """A credential is missing, invalid, or stored unsafely."""


class ToolNotFound(RtflashError):
    """An external program (idf.py, pio, addr2line, ...) is not installed or not usable."""


class ToolFailed(RtflashError):
    """An external program ran and failed."""


class FlashError(RtflashError):
    """Writing to or talking with a device failed."""


class PortError(RtflashError):
    """A serial port is missing, busy or not permitted."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a service manager, `kill`, CI's timeout): stopped like a Ctrl-C, at the next safe point,
    so every cleanup runs; exit status 143 (128 + SIGTERM), one line."""

    exit_code = 143
