"""Always-on statistics: counts, errors and latency percentiles without keeping every sample."""

from __future__ import annotations

import random

import numpy as np
import pytest

import edgeops
from edgeops.runtime import stats as stats_module
from edgeops.runtime.stats import RunStats, bucket_bounds, bucket_of
from tests.conftest import needs_ort


def test_every_latency_falls_in_its_bucket_and_buckets_are_narrow():
    rng = random.Random(1)
    for ns in list(range(300)) + [rng.randrange(1, 10**13) for _ in range(20000)]:
        lo, hi = bucket_bounds(bucket_of(ns))
        assert lo <= ns < hi
        assert hi - lo <= max(1, lo / 16)


@pytest.mark.parametrize("dist", ["lognormal", "uniform", "bimodal"])
def test_percentiles_match_numpy_within_the_histogram_resolution(dist):
    rng = np.random.default_rng(3)
    if dist == "lognormal":
        ns = rng.lognormal(np.log(200_000), 0.5, 50_000)
    elif dist == "uniform":
        ns = rng.uniform(10_000, 2_000_000, 50_000)
    else:
        ns = np.concatenate([rng.normal(100_000, 5_000, 45_000), rng.normal(5_000_000, 100_000, 5_000)])
    ns = np.maximum(ns, 1).astype(np.int64)
    stats = RunStats()
    for v in ns.tolist():
        stats.record(v)
    snap = stats.snapshot()
    assert snap["count"] == len(ns)
    for q, key in [(50, "p50"), (90, "p90"), (95, "p95"), (99, "p99")]:
        exact = np.percentile(ns, q, method="inverted_cdf") / 1e6
        assert snap["latency_ms"][key] == pytest.approx(exact, rel=1 / 30), key
    assert snap["latency_ms"]["mean"] == pytest.approx(ns.mean() / 1e6, rel=1e-9)
    assert snap["latency_ms"]["max"] == ns.max() / 1e6
    assert snap["latency_ms"]["min"] == ns.min() / 1e6


def test_empty_stats_and_reset():
    stats = RunStats()
    snap = stats.snapshot()
    assert snap["count"] == 0 and np.isnan(snap["latency_ms"]["p50"])
    stats.record(1000)
    assert stats.snapshot(reset=True)["count"] == 1
    assert stats.snapshot()["count"] == 0


@needs_ort
def test_model_runs_feed_the_statistics(examples, digits):
    m = edgeops.load(examples / "digits_mlp.onnx", threads=1)
    for i in range(50):
        m.run(digits["pixels"][i:i + 1])
    with pytest.raises(edgeops.InputError, match=r"input 'pixels' expects shape \[\?, 64\], got \[1, 3\]"):
        m.run(np.zeros((1, 3), np.float32))
    snap = m.stats.snapshot()
    assert snap["count"] == 50
    assert snap["errors"] == 1
    lat = snap["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert snap["rate_per_s"] > 0


# --- exact cases: small latencies sit in one-nanosecond buckets, so every number is known ----------

def stats_of(*ns: int) -> RunStats:
    stats = RunStats()
    for v in ns:
        stats.record(v)
    return stats


def test_every_small_latency_lands_in_its_own_bucket():
    """The inlined bucket arithmetic of record() agrees with bucket_of(), including 0 ns and 32..63 ns."""
    stats = stats_of(*range(300))
    assert [i for i, c in enumerate(stats.counts) if c] == sorted({bucket_of(ns) for ns in range(300)})
    assert sum(stats.counts) == 300 and stats.counts[bucket_of(40)] == 2  # 40 and 41 share a bucket of 2 ns


@pytest.mark.parametrize("q, ns", [
    pytest.param(0, 1, id="p0-is-the-smallest"),
    pytest.param(50, 15, id="p50-nearest-rank"),
    pytest.param(51, 16, id="p51-rounds-the-rank-up"),
    pytest.param(90, 27, id="p90"),
    pytest.param(100, 30, id="p100-is-the-largest"),
])
def test_percentiles_use_the_nearest_rank(q, ns):
    stats = stats_of(*range(1, 31))  # 1..30 ns: one value per exact bucket
    assert stats.percentile(q) == ns / 1e6
    assert stats.percentiles((q, 50)) == [ns / 1e6, 15 / 1e6]


def test_a_percentile_is_its_buckets_midpoint_within_the_seen_range():
    stats = stats_of(10, 20, 30)
    assert stats.percentile(50) == 20 / 1e6
    wide = stats_of(1000, 1000, 1000, 2000)  # bucket of 1000 ns: [992, 1024)
    assert wide.percentile(50) == (992 + 1024 - 1) / 2 / 1e6
    assert stats_of(1000).percentile(50) == 1000 / 1e6  # clamped to min and max


def test_snapshot_numbers_are_exact(monkeypatch):
    clock = [50.0]
    monkeypatch.setattr(stats_module.time, "monotonic", lambda: clock[0])
    stats = stats_of(0, 10, 20, 30)
    clock[0] = 52.0004
    snap = stats.snapshot()
    assert snap["window_s"] == 2.0 and snap["rate_per_s"] == pytest.approx(4 / 2.0004, rel=1e-12)
    assert snap["latency_ms"] == {"mean": 15 / 1e6, "min": 0.0, "p50": 10 / 1e6, "p90": 30 / 1e6,
                                  "p95": 30 / 1e6, "p99": 30 / 1e6, "max": 30 / 1e6}
    clock[0] = 53.2346
    assert stats.snapshot()["window_s"] == 3.235  # no reset by default: the window goes on
    assert stats.snapshot(reset=True)["count"] == 4
    clock[0] = 53.7346
    stats.record(10)
    assert stats.snapshot()["rate_per_s"] == pytest.approx(2.0)  # one run in half a second


def test_a_run_of_zero_nanoseconds_is_recorded_as_zero():
    """A coarse clock can time a run at 0 ns; min, max and every percentile are then 0."""
    lat = stats_of(0).snapshot()["latency_ms"]
    assert lat["max"] == lat["min"] == lat["p99"] == lat["mean"] == 0.0


def test_an_empty_window_has_no_latency_numbers():
    lat = RunStats().snapshot()["latency_ms"]
    assert all(np.isnan(v) for v in lat.values()), lat
    stats = stats_of(5000)
    stats.snapshot(reset=True)
    assert all(np.isnan(v) for v in stats.snapshot()["latency_ms"].values())  # min/max start again too
