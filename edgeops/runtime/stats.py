"""Always-on run statistics: call and error counts and a latency histogram.

Every ``Model.run`` records one latency here, so the bookkeeping must cost well
under a microsecond. Latencies go into a log-linear histogram of nanoseconds
(16 sub-buckets per power of two, the idea behind HdrHistogram): a bucket is an
index computed with two shifts, percentiles come from a cumulative walk, and the
relative error of a percentile is at most 1/32 (about 3 %), whatever the number
of samples. Nothing grows with the number of runs.

Counters are updated without a lock: under the GIL a rare increment can be lost
when many threads run the same model at once, which statistics can afford and the
hot path cannot (a lock would double its cost).
"""

from __future__ import annotations

import time
from typing import Any

_SUB_BITS = 4
_SUB = 1 << _SUB_BITS  # 16 sub-buckets per octave
_BUCKETS = 64 * _SUB


def bucket_of(ns: int) -> int:
    """Histogram bucket of a latency in nanoseconds (exact below 32 ns)."""
    b = ns.bit_length()
    if b <= _SUB_BITS + 1:
        return ns
    return ((b - _SUB_BITS) << _SUB_BITS) | ((ns >> (b - _SUB_BITS - 1)) & (_SUB - 1))


def bucket_bounds(idx: int) -> tuple[int, int]:
    """The half-open range ``[low, high)`` of nanoseconds that bucket ``idx`` holds."""
    if idx < 2 * _SUB:
        return idx, idx + 1
    shift = (idx >> _SUB_BITS) - 1
    mantissa = _SUB + (idx & (_SUB - 1))
    return mantissa << shift, (mantissa + 1) << shift


class RunStats:
    """Latency histogram plus counters of one model. Read with :meth:`snapshot`."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.errors = 0
        self.total_ns = 0
        self.min_ns = 1 << 62
        self.max_ns = 0
        self.counts = [0] * _BUCKETS
        self.since = time.monotonic()

    def record(self, ns: int) -> None:
        """Record one successful run that took ``ns`` nanoseconds."""
        self.count += 1
        self.total_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns
        if ns < self.min_ns:
            self.min_ns = ns
        b = ns.bit_length()  # bucket_of(ns), inlined: a call costs more than the arithmetic on the hot path
        self.counts[ns if b <= 5 else ((b - 4) << 4) | ((ns >> (b - 5)) & 15)] += 1

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of recorded latencies, in milliseconds (NaN if none)."""
        return self.percentiles((q,))[0]

    def percentiles(self, qs: tuple[float, ...]) -> list[float]:
        counts = list(self.counts)  # a consistent copy while runs go on
        total = sum(counts)
        if total == 0:
            return [float("nan")] * len(qs)
        out = []
        for q in qs:
            rank = max(1, min(total, int(-(-q * total // 100))))  # ceil, nearest-rank method
            seen = 0
            for idx, c in enumerate(counts):
                seen += c
                if seen >= rank:
                    lo, hi = bucket_bounds(idx)
                    value = (lo + hi - 1) / 2
                    value = min(max(value, self.min_ns), self.max_ns)
                    out.append(value / 1e6)
                    break
        return out

    def snapshot(self, *, reset: bool = False) -> dict[str, Any]:
        """Counts, rate and latency percentiles in ms, JSON-ready; ``reset`` starts a new window."""
        now = time.monotonic()
        elapsed = max(now - self.since, 1e-9)
        p50, p90, p95, p99 = self.percentiles((50, 90, 95, 99))
        n = self.count
        snap = {
            "count": n,
            "errors": self.errors,
            "window_s": round(elapsed, 3),
            "rate_per_s": n / elapsed,
            "latency_ms": {
                "mean": self.total_ns / n / 1e6 if n else float("nan"),
                "min": self.min_ns / 1e6 if n else float("nan"),
                "p50": p50,
                "p90": p90,
                "p95": p95,
                "p99": p99,
                "max": self.max_ns / 1e6 if n else float("nan"),
            },
        }
        if reset:
            self.reset()
        return snap
