"""The drift window in detail: binning as the profile bins, a bounded queue, what a snapshot holds and resets.

Each test here guards a change the rest of the suite let through (found by
``python tools/mutation.py drift``).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from edgeops.monitor import DriftMonitor, drift, ks_from_counts, psi, wasserstein_from_counts

EDGES = np.linspace(0, 1, 11)


def profile(*names: str, edges=EDGES, counts=None) -> dict:
    counts = [100] * (len(edges) - 1) if counts is None else counts
    return {"inputs": {n: {"histogram": {"edges": list(edges), "counts": list(counts)}} for n in names or ("x",)}}


def window_counts(monitor: DriftMonitor, values, name="x", reset=True) -> list[int]:
    monitor.update({name: values})
    return monitor.snapshot(reset=reset)["inputs"][name]["counts"]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_values_on_an_edge_bin_as_the_profile_bins_them(dtype):
    """Regression: probes were cast to the values' dtype, so float32 0.7 (0.69999999 in float64)
    went to [0.7, 0.8) where the profile's np.histogram on float64 puts it in [0.6, 0.7)."""
    monitor = DriftMonitor(profile())
    values = np.concatenate([EDGES, (EDGES[1:] + EDGES[:-1]) / 2]).astype(dtype)
    expected = np.histogram(values.astype(np.float64), EDGES)[0].tolist()  # validate.profile's binning
    assert window_counts(monitor, values) == expected


def test_edges_beyond_the_range_of_float16_still_bin_every_value():
    monitor = DriftMonitor(profile(edges=[-1e6, -1e5, 0, 1e5, 1e6], counts=[1, 1, 1, 1]))
    values = np.array([-np.inf, -60000, -1, 0, 1, 60000, np.inf, np.nan], dtype=np.float16)
    monitor.update({"x": values})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from the edges that float16 cannot hold
        stats = monitor.snapshot()["inputs"]["x"]
    assert stats["counts"] == [0, 2, 3, 0] and stats["nonfinite"] == 3


def test_counts_are_integers_in_the_telemetry_json():
    monitor = DriftMonitor(profile())
    monitor.update({"x": np.linspace(0.05, 0.95, 10)})
    assert json.dumps(monitor.snapshot()["inputs"]["x"]["counts"]) == "[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"


def test_the_queue_of_values_not_yet_binned_stays_bounded():
    """Values are binned once FLUSH_VALUES of them or FLUSH_ARRAYS arrays wait, not at the next snapshot."""
    monitor = DriftMonitor(profile(), max_values=drift.FLUSH_VALUES)
    win = monitor._windows["x"]
    monitor.update({"x": np.full(drift.FLUSH_VALUES - 1, 0.5)})
    assert win.pending_values == drift.FLUSH_VALUES - 1 and len(win.pending) == 1
    monitor.update({"x": [0.5]})
    assert win.pending == [] and win.pending_values == 0 and win.counts[5] == drift.FLUSH_VALUES
    monitor.update({"x": np.full(drift.FLUSH_VALUES - 1, 0.5)})
    assert win.pending_values == drift.FLUSH_VALUES - 1  # the count starts again from zero
    monitor.snapshot(reset=True)
    for _ in range(drift.FLUSH_ARRAYS - 1):
        monitor.update({"x": [0.5]})
    assert len(win.pending) == drift.FLUSH_ARRAYS - 1
    monitor.update({"x": [0.5]})
    assert win.pending == [] and win.counts[5] == drift.FLUSH_ARRAYS


def test_nonfinite_values_add_up_across_flushes_and_reset_with_the_window():
    monitor = DriftMonitor(profile())
    for _ in range(2):
        monitor.update({"x": [np.nan, 0.5]})
        monitor.snapshot()  # each snapshot bins what waits
    assert monitor.snapshot(reset=True)["inputs"]["x"]["nonfinite"] == 2
    assert monitor.snapshot()["inputs"]["x"]["nonfinite"] == 0


def test_snapshot_statistics_are_those_of_the_window_counts():
    monitor = DriftMonitor(profile(counts=[5, 10, 20, 30, 40, 40, 30, 20, 10, 5]))
    values = np.random.default_rng(0).uniform(0, 1, 500)
    monitor.update({"x": values})
    stats = monitor.snapshot()["inputs"]["x"]
    ref = np.array([5, 10, 20, 30, 40, 40, 30, 20, 10, 5])
    counts = np.histogram(values, EDGES)[0]
    assert stats["counts"] == counts.tolist()
    assert stats["psi"] == pytest.approx(psi(ref, counts))
    assert stats["ks"] == pytest.approx(ks_from_counts(ref, counts)) and stats["ks"] > 0
    assert stats["wasserstein"] == pytest.approx(wasserstein_from_counts(EDGES, ref, counts))
    assert stats["wasserstein"] > 0 and stats["psi_level"] == "shifted"


def test_below_min_samples_every_statistic_is_none_and_the_reason_says_how_many():
    monitor = DriftMonitor(profile(), min_samples=50)
    monitor.update({"x": np.linspace(0, 1, 49)})
    stats = monitor.snapshot()["inputs"]["x"]
    assert {k: stats[k] for k in ("psi", "psi_level", "ks", "wasserstein")} == dict.fromkeys(
        ("psi", "psi_level", "ks", "wasserstein"))
    assert stats["reason"] == "not enough data: 49 of 50 values"


def test_window_seconds_come_from_the_monotonic_clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(drift.time, "monotonic", lambda: now[0])
    monitor = DriftMonitor(profile())
    now[0] = 102.34567
    assert monitor.snapshot(reset=True)["window_s"] == 2.346
    now[0] = 103.0
    assert monitor.snapshot()["window_s"] == 0.654  # the reset started a new window


@pytest.mark.parametrize("first", [
    pytest.param({}, id="first-input-missing"),
    pytest.param({"a": np.array(["text"])}, id="first-input-not-numeric"),
])
def test_an_input_missing_or_not_numeric_does_not_stop_the_others_being_counted(first):
    monitor = DriftMonitor(profile("a", "b"))
    monitor.update({**first, "b": np.linspace(0, 1, 10)})
    snap = monitor.snapshot()
    assert snap["inputs"]["a"]["samples"] == 0 and snap["inputs"]["b"]["samples"] == 10
    assert snap["window_samples"] == 1


def test_subsampling_takes_an_even_stride_that_turns_with_each_update():
    monitor = DriftMonitor(profile(), max_values=5)
    image = np.repeat(np.array([[0.05, 0.15]]), 5, axis=0)  # 10 values, 0.05 and 0.15 alternating
    assert window_counts(monitor, image, reset=False)[:2] == [5, 0]  # stride 2 from offset 0: every 0.05
    assert window_counts(monitor, image, reset=False)[:2] == [5, 5]  # then from offset 1: every 0.15
