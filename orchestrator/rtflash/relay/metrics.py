"""The relay's counters, served as Prometheus text at `GET /metrics`.

What is counted: offers received, responses by status, limit refusals by reason, upstream round trips
(a histogram), upstream connections opened vs reused (keep-alive working: one TLS handshake to the API
serves many set-ups). Labels are only status codes, limit reasons and fixed names: never a token, a
device secret, the key or a device name (names are the user's, and a label per device would grow
without bound). Counters are per process: with `serve --workers N` each worker answers for itself,
labelled `worker`, and Prometheus sums them.

The exposition format is the text format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats):
`# HELP`, `# TYPE`, then `name{label="value"} number` lines; histograms as cumulative `_bucket{le=}`
lines plus `_sum` and `_count`. Written by hand: five series do not need prometheus_client (another
dependency, and a registry global to the process).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UPSTREAM_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass
class Metrics:
    worker: int = 0
    offers: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    upstream_new: int = 0  # upstream connections opened (a TCP + TLS handshake each)
    upstream_requests: int = 0  # create-call requests sent upstream
    upstream_count: int = 0
    upstream_sum_ms: float = 0.0
    upstream_buckets: list[int] = field(default_factory=lambda: [0] * len(UPSTREAM_BUCKETS_MS))

    @property
    def upstream_reused(self) -> int:
        """Requests sent on a kept-alive connection: those that did not open one."""
        return max(0, self.upstream_requests - self.upstream_new)

    def upstream_ms(self, ms: float) -> None:
        self.upstream_count += 1
        self.upstream_sum_ms += ms
        for i, edge in enumerate(UPSTREAM_BUCKETS_MS):
            if ms <= edge:
                self.upstream_buckets[i] += 1

    def render(self) -> str:
        w = f'worker="{self.worker}"'
        out = [
            "# HELP rtflash_relay_offers_total SDP offers received from devices.",
            "# TYPE rtflash_relay_offers_total counter",
            f"rtflash_relay_offers_total{{{w}}} {self.offers}",
            "# HELP rtflash_relay_responses_total Responses to offers, by HTTP status.",
            "# TYPE rtflash_relay_responses_total counter",
            *(f'rtflash_relay_responses_total{{{w},status="{s}"}} {n}' for s, n in sorted(self.statuses.items())),
            "# HELP rtflash_relay_limit_refusals_total Offers refused (429) by a per-device limit.",
            "# TYPE rtflash_relay_limit_refusals_total counter",
            *(f'rtflash_relay_limit_refusals_total{{{w},reason="{r}"}} {self.refusals.get(r, 0)}'
              for r in ("rate", "concurrent")),
            ("# HELP rtflash_relay_upstream_connections_total Upstream requests by connection: new (a TLS "
             "handshake) or reused (keep-alive)."),
            "# TYPE rtflash_relay_upstream_connections_total counter",
            f'rtflash_relay_upstream_connections_total{{{w},connection="new"}} {self.upstream_new}',
            f'rtflash_relay_upstream_connections_total{{{w},connection="reused"}} {self.upstream_reused}',
            "# HELP rtflash_relay_upstream_seconds Round trip of the create-call request to the Realtime API.",
            "# TYPE rtflash_relay_upstream_seconds histogram",
            *(f'rtflash_relay_upstream_seconds_bucket{{{w},le="{edge / 1000:g}"}} {n}'
              for edge, n in zip(UPSTREAM_BUCKETS_MS, self.upstream_buckets)),
            f'rtflash_relay_upstream_seconds_bucket{{{w},le="+Inf"}} {self.upstream_count}',
            f"rtflash_relay_upstream_seconds_sum{{{w}}} {self.upstream_sum_ms / 1000:.6f}",
            f"rtflash_relay_upstream_seconds_count{{{w}}} {self.upstream_count}",
        ]
        return "\n".join(out) + "\n"
