"""Always-on statistics: counts, errors and latency percentiles without keeping every sample."""

from __future__ import annotations

import random

import numpy as np
import pytest

import edgeops
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
    with pytest.raises(edgeops.InputError):
        m.run(np.zeros((1, 3), np.float32))
    snap = m.stats.snapshot()
    assert snap["count"] == 50
    assert snap["errors"] == 1
    lat = snap["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert snap["rate_per_s"] > 0
