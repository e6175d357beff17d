"""Per-device limits: a token bucket for the call rate and a bound on concurrent set-ups.

Why both: the rate bucket stops a looping or stolen device from opening call after call on the user's
bill; the concurrency bound stops one device from tying up the relay's upstream connections. The relay
is only in the set-up path (media goes directly to OpenAI), so "concurrent" counts offers being
forwarded, not calls in progress. One asyncio loop runs the relay, so no locking is needed.
"""

from __future__ import annotations

import math
import time
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
        b.tokens = min(float(cfg.burst), b.tokens + (now - b.stamp) * cfg.per_minute / 60.0)
        b.stamp = now
        if b.in_flight >= cfg.concurrent:
            raise Refused("concurrent", 1)
        if b.tokens < 1.0:
            wait = (1.0 - b.tokens) * 60.0 / cfg.per_minute if cfg.per_minute > 0 else 3600
            raise Refused("rate", max(1, math.ceil(wait)))
        b.tokens -= 1.0
        b.in_flight += 1

    def release(self, device: str) -> None:
        b = self._buckets.get(device)
        if b is not None and b.in_flight > 0:
            b.in_flight -= 1

    def in_flight(self, device: str) -> int:
        b = self._buckets.get(device)
        return b.in_flight if b else 0
