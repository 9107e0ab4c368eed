"""A/B statistics: Wilson and Newcombe intervals against scipy and Newcombe 1998's worked examples, and
accuracy per model version from stored telemetry (a version 10 points worse is told apart; equal ones are not)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeops.errors import UsageError
from edgeops.fleet.abstats import accuracy_by_version, compare, feedback_of, newcombe_diff, wilson
from edgeops.fleet.store import Incoming, open_store

T0 = 1_765_000_000_000
MIN = 60_000

# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score, no continuity correction)
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0)),
    ((10, 10, 0, 10), (0.6075, 1.0)),
]
# Newcombe (1998), Statistics in Medicine 17:857-872 (the single proportion), Table I, method 3 (Wilson score)
WILSON_TABLE_I = [((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)), ((0, 20), (0.0, 0.1611)),
                  ((1, 29), (0.0061, 0.1718))]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE_II, ids=[str(c) for c, _ in NEWCOMBE_TABLE_II])
def test_newcombe_matches_the_papers_worked_examples(counts, expected):
    d, lo, hi = newcombe_diff(*counts)
    k1, n1, k2, n2 = counts
    assert d == pytest.approx(k1 / n1 - k2 / n2)
    assert (lo, hi) == pytest.approx(expected, abs=6e-5)


@pytest.mark.parametrize(("counts", "expected"), WILSON_TABLE_I, ids=[str(c) for c, _ in WILSON_TABLE_I])
def test_wilson_matches_the_papers_worked_examples(counts, expected):
    assert wilson(*counts) == pytest.approx(expected, abs=6e-5)


def test_wilson_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 2000))
        k = int(rng.integers(0, n + 1))
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        z = float(stats.norm.ppf(0.975))
        assert wilson(k, n, z) == pytest.approx((ci.low, ci.high), abs=1e-9), (k, n)


@pytest.mark.parametrize("bad", [(-1, 10), (11, 10), (1.5, 10), (True, 10)], ids=["negative", "k>n", "float", "bool"])
def test_bad_counts_are_refused(bad):
    with pytest.raises(UsageError):
        wilson(*bad)
    with pytest.raises(UsageError):
        newcombe_diff(*bad, 5, 10)


def test_no_labels_on_one_side_is_refused_and_wilson_of_nothing_is_everything():
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(UsageError, match="both sides"):
        newcombe_diff(3, 10, 0, 0)


# -- accuracy per version from the store -------------------------------------------------------------------------

def message(device: str, seq: int, ts: int, version: str, labels: dict, feedback: dict) -> Incoming:
    msg = {"ts": ts, "device": device, "fleet": "demo", "seq": seq, "id": f"{device}-{seq}",
           "model": {"name": "digits", "version": version, "sha256": "ab" * 32},
           "inference": {"count": 10, "errors": 0, "latency_ms": {"p95": 1.0}}, "labels": labels,
           "feedback": feedback, "interval_s": 10.0}
    return Incoming(f"edgeops/demo/{device}/telemetry", json.dumps(msg).encode(), ts)


def ab_fleet(store, acc: dict[str, float], per_window: int = 25, windows: int = 10, seed: int = 0) -> None:
    """Eight devices, half on each version (two sites), reporting labelled predictions drawn at ``acc``."""
    rng = np.random.default_rng(seed)
    msgs = []
    for i in range(8):
        version = "1" if i % 2 == 0 else "2"
        labels = {"site": "berlin" if i < 4 else "paris", "ring": "ab"}
        for w in range(windows):
            correct = int(rng.binomial(per_window, acc[version]))
            msgs.append(message(f"d{i}", w + 1, T0 + w * MIN, version, labels,
                                {version: {"n": per_window, "correct": correct,
                                           "abs_err_sum": float(per_window - correct)}}))
    msgs.append(message("old", 1, T0, "1", {}, {"1": "not counts"}))  # an odd message is ignored
    store.write_batch(msgs)


@pytest.fixture
def sqlite_store(tmp_path):
    with open_store(str(tmp_path / "fleet.sqlite")) as store:
        yield store


def test_a_version_ten_points_worse_is_told_apart(sqlite_store):
    ab_fleet(sqlite_store, {"1": 0.90, "2": 0.80})
    stats = accuracy_by_version(sqlite_store, "demo", T0, T0 + 60 * MIN)
    assert {v: stats[v]["n"] for v in stats} == {"1": 1000, "2": 1000}
    for v in ("1", "2"):
        s = stats[v]
        assert s["lo"] < s["acc"] < s["hi"]
        assert (s["lo"], s["hi"]) == pytest.approx(wilson(s["correct"], s["n"]))
        assert s["mae"] == pytest.approx(1 - s["acc"])
        assert set(s["by_label"]) == {"site=berlin", "site=paris", "ring=ab"}
        assert sum(g["n"] for k, g in s["by_label"].items() if k.startswith("site=")) == s["n"]
    diff = compare(stats, "1", "2")
    assert diff["hi"] < 0, diff  # version 2 is worse, and the interval says so
    assert diff["diff"] == pytest.approx(stats["2"]["acc"] - stats["1"]["acc"])
    assert diff["lo"] < -0.1 < diff["hi"]  # and the interval holds the true drop


def test_equal_versions_give_an_interval_around_zero(sqlite_store):
    ab_fleet(sqlite_store, {"1": 0.85, "2": 0.85}, seed=3)
    stats = accuracy_by_version(sqlite_store, "demo", T0, T0 + 60 * MIN)
    diff = compare(stats, "1", "2")
    assert diff["lo"] < 0 < diff["hi"]
    assert diff["hi"] - diff["lo"] < 0.07  # a realistic n: the interval is a few points wide


def test_time_window_and_selection(sqlite_store):
    ab_fleet(sqlite_store, {"1": 0.9, "2": 0.8})
    first_half = accuracy_by_version(sqlite_store, "demo", T0, T0 + 5 * MIN)
    assert first_half["1"]["n"] == 4 * 5 * 25
    paris = accuracy_by_version(sqlite_store, "demo", T0, None, select={"site": "paris"})
    assert paris["2"]["n"] == 2 * 10 * 25
    assert set(paris["2"]["by_label"]) == {"site=paris", "ring=ab"}
    assert accuracy_by_version(sqlite_store, "demo", T0, None, select={"site": ["nowhere"]}) == {}
    assert math.isclose(paris["1"]["acc"], paris["1"]["correct"] / paris["1"]["n"])


def test_feedback_of_keeps_only_well_formed_counts():
    msg = {"feedback": {"1": {"n": 10, "correct": 7, "abs_err_sum": 3.0}, "2": {"n": 3, "correct": 4},
                        "3": {"n": 2, "correct": 1, "abs_err_sum": None}, "4": []}}
    assert feedback_of(msg) == {"1": {"n": 10, "correct": 7, "abs_err_sum": 3.0},
                                "3": {"n": 2, "correct": 1, "abs_err_sum": 0.0}}
    assert feedback_of({}) == {}
