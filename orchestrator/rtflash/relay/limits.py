"""Per-device limits: a token bucket for the call rate and a bound on concurrent set-ups.

Why both: the rate bucket stops a looping or stolen device from opening call after call on the user's
bill; the concurrency bound stops one device from tying up the relay's upstream connections. The relay
is only in the set-up path (media goes directly to OpenAI), so "concurrent" counts offers being
forwarded, not calls in progress. One asyncio loop runs a relay process, so `Limits` needs no locking;
with `relay serve --workers N` the processes share one `SharedLimits` (a table in shared memory under
one lock), so a device gets its limits once, not once per worker.
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LimitConfig:
    per_minute: float = 6.0  # refill rate of the bucket
    burst: int = 5  # bucket size: calls allowed back to back
    concurrent: int = 2  # offers of one device in flight at once


class Refused(Exception):
    """Over a limit: `reason` ("rate" or "concurrent") and seconds to wait before trying again."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    in_flight: int = 0


@dataclass
class Limits:
    config: LimitConfig = field(default_factory=LimitConfig)
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def acquire(self, device: str) -> None:
        """Admit one set-up for `device` or raise Refused; admitted ones must be `release`d."""
        cfg, now = self.config, self.clock()
        b = self._buckets.get(device)
        if b is None:
            b = self._buckets[device] = _Bucket(float(cfg.burst), now)
        _admit(cfg, b, now)

    def release(self, device: str) -> None:
        b = self._buckets.get(device)
        if b is not None and b.in_flight > 0:
            b.in_flight -= 1

    def in_flight(self, device: str) -> int:
        b = self._buckets.get(device)
        return b.in_flight if b else 0


def _admit(cfg: LimitConfig, b: _Bucket, now: float) -> None:
    """Refill `b` to `now`, then take one call from it or raise Refused (b updated either way)."""
    b.tokens = min(float(cfg.burst), b.tokens + (now - b.stamp) * cfg.per_minute / 60.0)
    b.stamp = now
    if b.in_flight >= cfg.concurrent:
        raise Refused("concurrent", 1)
    if b.tokens < 1.0:
        wait = (1.0 - b.tokens) * 60.0 / cfg.per_minute if cfg.per_minute > 0 else 3600
        raise Refused("rate", max(1, math.ceil(wait)))
    b.tokens -= 1.0
    b.in_flight += 1


_SLOT = struct.Struct("<32sddq")  # device name (NAME_RE: at most 32 bytes), tokens, stamp, in flight


class SharedLimits:
    """`Limits` for several relay processes: made before they fork, the buckets live in anonymous shared
    memory (one slot per device, open addressing on the name's CRC) under one process-shared lock.
    Monotonic time is one clock for every process on Linux, so the refill arithmetic is unchanged."""

    def __init__(self, config: LimitConfig = LimitConfig(), slots: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config, self.slots, self.clock = config, slots, clock
        self._mem = mmap.mmap(-1, slots * _SLOT.size)  # MAP_SHARED|MAP_ANONYMOUS: shared with forked children
        self._lock = multiprocessing.get_context("fork").Lock()

    def _find(self, device: str) -> tuple[int, _Bucket | None]:
        """(slot offset, its bucket or None when free) for `device`; the table is never full in practice
        (slots >> enrolled devices); when it is, every device shares the last slot (stricter, never looser)."""
        name = device.encode()[:32].ljust(32, b"\0")
        start = zlib.crc32(name) % self.slots
        for i in range(self.slots):
            at = ((start + i) % self.slots) * _SLOT.size
            key, tokens, stamp, in_flight = _SLOT.unpack_from(self._mem, at)
            if key == name:
                return at, _Bucket(tokens, stamp, in_flight)
            if key == b"\0" * 32:
                return at, None
        return at, _Bucket(0.0, self.clock(), 0)

    def acquire(self, device: str) -> None:
        with self._lock:
            at, b = self._find(device)
            now = self.clock()
            if b is None:
                b = _Bucket(float(self.config.burst), now)
            try:
                _admit(self.config, b, now)
            finally:
                _SLOT.pack_into(self._mem, at, device.encode()[:32], b.tokens, b.stamp, b.in_flight)

    def release(self, device: str) -> None:
        with self._lock:
            at, b = self._find(device)
            if b is not None and b.in_flight > 0:
                _SLOT.pack_into(self._mem, at, device.encode()[:32], b.tokens, b.stamp, b.in_flight - 1)

    def in_flight(self, device: str) -> int:
        with self._lock:
            b = self._find(device)[1]
        return b.in_flight if b else 0
