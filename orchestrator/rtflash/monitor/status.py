"""What the firmware says about itself, summed up in one status line.

The firmware logs its state with fixed tags and wording (firmware-src is ours, and these strings are
its contract with this module): `wifi_sta` (`connected to <ssid>`, `got ip: <ip>`,
`disconnected (reason N), retry in N ms`), `rt_session` (`peer state: <STATE>[: why]`: NEW, CHECKING,
ICE_CONNECTED (ICE only, DTLS running: not connected yet), CONNECTED (DTLS and SRTP up), FAILED,
DISCONNECTED, CLOSED;
`datachannel open: <label>`, `event: <type>`) and `rtflash` (`firmware <version> board <name>`).
A crash or a reset (a panic's first line, `Rebooting...`, the ROM's `rst:0x..` boot line) makes all
of it stale: the status starts afresh from there.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from rtflash.monitor.parser import LogLine

WIFI_RULES = (
    (re.compile(r"got ip: (\S+)"), lambda s, m: s._set(wifi="up", ip=m[1])),
    (re.compile(r"connected to (.+)"), lambda s, m: s._set(wifi="associated", ssid=m[1].strip())),
    (re.compile(r"disconnected \(reason (\d+)\)(?:, retry in (\d+) ms)?"),
     lambda s, m: s._set(wifi=f"down (reason {m[1]}" + (f", retry in {m[2]} ms)" if m[2] else ")"), ip="")),
)
SESSION_RULES = (
    (re.compile(r"peer state: ([A-Z_]+)"), lambda s, m: s._peer(m[1])),
    (re.compile(r"datachannel open: (\S+)"), lambda s, m: s._set(datachannel=f"{m[1]} open")),
    (re.compile(r"datachannel clos\w*: (\S+)"), lambda s, m: s._set(datachannel=f"{m[1]} closed")),
    (re.compile(r"event: (\S+)"), lambda s, m: s._event(m[1])),
)
APP_RULES = ((re.compile(r"firmware (\S+) board (\S+)"), lambda s, m: s._set(firmware=m[1], board=m[2])),)
RULES = {"wifi_sta": WIFI_RULES, "rt_session": SESSION_RULES, "rtflash": APP_RULES}
PEER_DOWN = ("FAILED", "DISCONNECTED", "CLOSED")
CRASHES = ("Guru Meditation Error", "abort() was called", "assert failed:", "***ERROR***",
           "Stack smashing protect failure", "CPU halted.", "Rebooting...")
ROM_RESET_RE = re.compile(r"rst:(0x[0-9a-fA-F]+)(?: \(([A-Z0-9_]+)\))?")


@dataclass
class Status:
    wifi: str = ""
    ssid: str = ""
    ip: str = ""
    peer: str = ""
    datachannel: str = ""
    last_event: str = ""
    events: int = 0
    firmware: str = ""
    board: str = ""
    reset: str = ""  # why the device restarted, until the firmware says something new

    def observe(self, line: LogLine) -> bool:
        """Update from one log line; True when something changed."""
        rules = RULES.get(line.tag) if line.level else None
        if not rules:
            return False
        for pattern, apply in rules:
            m = pattern.search(line.message)
            if m:
                before = dict(self.__dict__)
                self.reset = ""
                apply(self, m)
                return self.__dict__ != before
        return False

    def restarted(self, text: str) -> bool:
        """A crash or reset line (not an ESP-IDF log line) starts a fresh status; True when that changed it."""
        why = restart_reason(text)
        return self.restart(why) if why else False

    def restart(self, why: str) -> bool:
        """Forget everything the old run said (the event counter too); True when that changed the status."""
        fresh = {**Status().__dict__, "reset": why}
        if self.__dict__ == fresh:
            return False
        self.__dict__.update(fresh)
        return True

    def _set(self, **values: str) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    def _peer(self, state: str) -> None:
        self.peer = state
        if state in PEER_DOWN and self.datachannel.endswith(" open"):
            self.datachannel = self.datachannel.removesuffix(" open") + " closed"

    def _event(self, kind: str) -> None:
        self.last_event = kind
        self.events += 1

    def summary(self) -> str:
        """One line, only the parts known so far: `wifi 192.168.1.23 | webrtc CONNECTED | ...`."""
        parts = [f"device {self.reset}"] if self.reset else []
        if self.wifi:
            where = self.ip if self.wifi == "up" else self.wifi
            parts.append(f"wifi {where}" + (f" ({self.ssid})" if self.ssid and self.wifi != "up" else ""))
        if self.peer:
            parts.append(f"webrtc {self.peer}")
        if self.datachannel:
            parts.append(f"dc {self.datachannel}")
        if self.last_event:
            parts.append(f"event {self.last_event} (#{self.events})")
        if self.firmware:
            parts.append(f"fw {self.firmware}" + (f" on {self.board}" if self.board else ""))
        return " | ".join(parts)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v}


def restart_reason(text: str) -> str:
    """`crashed`, `rebooting`, `halted` or `reset rst:0xc (RTC_SW_CPU_RST)` for a line that ends the app; else ""."""
    if "rst:0x" in text:
        m = ROM_RESET_RE.search(text)
        if m:
            return f"reset rst:{m[1]}" + (f" ({m[2]})" if m[2] else "")
    for mark in CRASHES:
        if mark in text:
            return {"Rebooting...": "rebooting", "CPU halted.": "halted"}.get(mark, "crashed")
    return ""
