"""Per-device limits: a token bucket for the call rate and a bound on concurrent set-ups.

Why both: the rate bucket stops a looping or stolen device from opening call after call on the user's
bill; the concurrency bound stops one device from tying up the relay's upstream connections. The relay
is only in the set-up path (media goes directly to OpenAI), so "concurrent" counts offers being
forwarded, not calls in progress. The state lives in the store (store.py: `Store.acquire`), so the
limits hold across `serve --workers` and across relay hosts sharing a PostgreSQL store; this module is
the arithmetic, the same for every store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


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
class Bucket:
    tokens: float
    stamp: float  # seconds (the store's clock)
    in_flight: int = 0


def admit(cfg: LimitConfig, b: Bucket, now: float) -> None:
    """Refill `b` to `now`, then take one call from it or raise Refused (b updated either way). A clock
    that went back (another host's) refills nothing rather than draining the bucket."""
    b.tokens = min(float(cfg.burst), b.tokens + max(0.0, now - b.stamp) * cfg.per_minute / 60.0)
    b.stamp = max(b.stamp, now)
    if b.in_flight >= cfg.concurrent:
        raise Refused("concurrent", 1)
    if b.tokens < 1.0:
        wait = (1.0 - b.tokens) * 60.0 / cfg.per_minute if cfg.per_minute > 0 else 3600
        raise Refused("rate", max(1, math.ceil(wait)))
    b.tokens -= 1.0
    b.in_flight += 1
