"""The benchmark harness at its edges, on a clock that moves only when the model runs: every statistic, stop rule,
progress fraction, system reading and warning threshold to the exact value (from mutation testing, issue 11)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeops import bench
from edgeops.bench import FixedProbe, Reading, harness
from edgeops.errors import UsageError
from edgeops.runtime import FunctionBackend, Model, TensorSpec
from tests.conftest import needs_ort

F32 = np.dtype("float32")
QUIET = FixedProbe([Reading(2000.0, 50.0, 0)])


class FakeClock:
    """Stands in for the harness's ``time`` module. Time passes only inside the model, by the step it is given;
    the process is on the CPU for ``cpu_share`` of it, counted from an arbitrary start."""

    def __init__(self, cpu_share: float = 0.5):
        self.ns = 7_000_000_000
        self.cpu_share = cpu_share

    def perf_counter_ns(self) -> int:
        return self.ns

    def perf_counter(self) -> float:
        return self.ns / 1e9

    def process_time(self) -> float:
        return 1000.0 + self.ns / 1e9 * self.cpu_share


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(harness, "time", c)
    return c


def timed_model(clock: FakeClock, step_ms=lambda call: 1.0):
    """A model that takes ``step_ms(call)`` milliseconds of the fake clock on its ``call``-th run (1 = the first
    inference, then the warmup runs, then the steady state), and records its inputs."""
    seen = []

    def fn(x):
        seen.append(x.copy())
        clock.ns += round(step_ms(len(seen)) * 1e6)
        return {"y": x.sum(axis=-1)}

    return Model(FunctionBackend(fn, [TensorSpec("x", (None, 4), F32)], [TensorSpec("y", None, F32)])), seen


def bench_one(model, **kwargs):
    kwargs = {"warmup": 0, "min_duration": 0, "probe": QUIET, **kwargs}
    (r,) = bench.run([model], **kwargs)
    return r.to_dict(samples=True)


# -- the numbers -------------------------------------------------------------------------------------


def test_every_statistic_is_the_steady_state_runs_own(clock):
    steady = [0.1, 0.4, 0.2, 0.8, 0.3, 0.5, 0.9, 0.6]  # under a millisecond: a fast model still gets a cv
    model, _ = timed_model(clock, lambda call: 5.0 if call == 1 else steady[call - 2])
    d = bench_one(model, runs=len(steady), batch=2)

    ms = np.array(steady)
    p50, p90, p95, p99, p999 = np.percentile(ms, [50, 90, 95, 99, 99.9])
    assert d["samples_ms"] == pytest.approx(steady)
    assert d["first_inference_ms"] == pytest.approx(5.0)
    assert d["latency_ms"] == pytest.approx({"mean": ms.mean(), "std": ms.std(ddof=1), "min": 0.1, "max": 0.9,
                                             "p50": p50, "p90": p90, "p95": p95, "p99": p99, "p999": p999})
    assert d["cv"] == pytest.approx(ms.std(ddof=1) / ms.mean())
    assert d["duration_s"] == pytest.approx(ms.sum() / 1e3)
    assert d["throughput_per_s"] == pytest.approx(len(steady) * 2 / (ms.sum() / 1e3))  # samples, not batches
    assert d["cpu_percent"] == pytest.approx(50.0)  # the process's CPU time over the run, not since it started


def test_warmup_is_timed_and_counted_apart(clock):
    model, _ = timed_model(clock, lambda call: {1: 9.0, 2: 4.0, 3: 6.0}.get(call, 1.0))
    d = bench_one(model, runs=5, warmup=2)
    assert d["first_inference_ms"] == pytest.approx(9.0)
    assert d["warmup"] == {"count": 2, "mean_ms": pytest.approx(5.0)}
    assert d["samples_ms"] == pytest.approx([1.0] * 5)
    assert bench_one(timed_model(clock)[0], runs=5)["warmup"] == {"count": 0, "mean_ms": None}


def test_a_clock_too_coarse_to_see_a_run_gives_no_ratios_instead_of_dividing_by_zero(clock):
    model, _ = timed_model(clock, lambda call: 0.0)
    d = bench_one(model, runs=300)
    assert d["latency_ms"]["mean"] == 0.0 and d["cv"] is None
    assert d["throughput_per_s"] is None and math.isnan(d["cpu_percent"])
    assert not any("unstable" in w or "drift" in w for w in d["warnings"])


# -- stop rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, step_ms, runs", [
    pytest.param({"runs": 5}, 10.0, 5, id="runs-reached"),
    pytest.param({"runs": 1, "min_duration": 1.0}, 250.0, 4, id="min-duration-reached-exactly"),
    pytest.param({"runs": 3, "min_duration": 1.0}, 300.0, 4, id="runs-then-min-duration"),
    pytest.param({"runs": 6, "min_duration": 0.1}, 250.0, 6, id="min-duration-then-runs"),
    pytest.param({"runs": 100, "max_duration": 1.0}, 250.0, 4, id="max-duration-reached-exactly"),
    pytest.param({"runs": 100, "min_duration": 0.5, "max_duration": 0.5}, 200.0, 3, id="min-equals-max"),
])
def test_steady_state_stops_on_the_first_bound_reached(clock, settings, step_ms, runs):
    model, _ = timed_model(clock, lambda call: step_ms)
    d = bench_one(model, **settings)
    assert d["runs"] == runs
    assert d["duration_s"] == pytest.approx(runs * step_ms / 1e3)


def test_progress_follows_the_runs_and_the_minimum_duration(clock):
    reports = []
    model, _ = timed_model(clock, lambda call: 30.0)
    bench.run([model], runs=20, warmup=0, min_duration=0, probe=QUIET,
              progress=lambda label, fraction: reports.append((label, fraction)))
    # every 0.1 s: half for the runs done (4, 8, 12, 16 of 20), half for the duration (none asked: done); then 1
    assert reports == [("(in memory)", pytest.approx(f)) for f in (0.6, 0.7, 0.8, 0.9, 1.0)]

    reports.clear()
    model, _ = timed_model(clock, lambda call: 250.0)
    bench.run([model], runs=1, warmup=0, min_duration=1.0, probe=QUIET,
              progress=lambda label, fraction: reports.append(fraction))
    assert reports == pytest.approx([0.625, 0.75, 0.875, 1.0])  # the one run done; 0.25, 0.5, 0.75 of 1 s


def test_the_system_is_read_at_the_start_once_a_second_and_at_the_end(clock):
    probe = FixedProbe([Reading(2400, 50.0, 0), Reading(2300, 60.0, 0), Reading(2000, 70.0, 0x4),
                        Reading(2350, 55.0, 0), Reading(1000, 99.0, 0xFF)])
    model, _ = timed_model(clock, lambda call: 250.0)
    d = bench_one(model, runs=1, min_duration=2.5, probe=probe)  # readings at 0 s, 1 s, 2 s, and 2.5 s (the end)
    assert d["system"]["cpu_freq_mhz"] == {"start": 2400, "end": 2350, "min": 2000, "max": 2400}
    assert d["system"]["temperature_c"] == {"start": 50.0, "end": 55.0, "max": 70.0}
    assert d["system"]["throttled_flags"] == "0x0"  # the last reading's, even when fine
    assert any("CPU frequency fell from 2400 MHz to 2000 MHz" in w for w in d["warnings"])
    assert any("get_throttled=0x4" in w for w in d["warnings"])


def test_a_machine_that_exposes_nothing_reports_none():
    model, _ = timed_model(FakeClock())
    d = bench_one(model, runs=5, probe=FixedProbe([Reading(None, None, None)]))
    assert {k: d["system"][k] for k in ("cpu_freq_mhz", "temperature_c", "throttled_flags")} == dict.fromkeys(
        ("cpu_freq_mhz", "temperature_c", "throttled_flags"))


# -- inputs and what the result says ---------------------------------------------------------------------


def test_first_warmup_and_steady_runs_take_consecutive_batches(tmp_path):
    data = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.savez(tmp_path / "d.npz", x=data)
    model, seen = timed_model(FakeClock())
    d = bench_one(model, runs=6, warmup=3, batch=2, data=str(tmp_path / "d.npz"))
    assert len(seen) == 1 + 3 + 6
    for i, x in enumerate(seen):  # five batches of two, cycling, none skipped
        np.testing.assert_array_equal(x, data[(2 * i) % 10:(2 * i) % 10 + 2])
    assert d["inputs"] == f"data:{tmp_path / 'd.npz'}"


def test_the_result_says_how_it_was_run():
    model, _ = timed_model(FakeClock())
    d = bench_one(model, runs=3, batch=4, threads=2)
    assert {k: d[k] for k in ("model", "format", "backend", "threads", "batch", "inputs", "end_to_end", "init_ms")} \
        == {"model": "(in memory)", "format": model.format, "backend": model.backend, "threads": 2, "batch": 4,
            "inputs": "random", "end_to_end": False, "init_ms": None}  # no load timed for a model already open


@needs_ort
def test_a_backend_that_cannot_run_the_model_is_refused_not_replaced(examples):
    with pytest.raises(UsageError, match="runs tflite models"):
        bench.run([examples / "digits_mlp.onnx"], backend="litert", runs=2, min_duration=0, probe=QUIET)


def test_settings_or_keywords_but_not_both():
    model, _ = timed_model(FakeClock())
    (r,) = bench.run([model], bench.Settings(runs=3, warmup=0, min_duration=0), probe=QUIET)
    assert r.to_dict()["runs"] == 3
    with pytest.raises(UsageError, match="either settings or keyword arguments"):
        bench.run([model], bench.Settings(), runs=3, probe=QUIET)


@pytest.mark.parametrize("settings", [
    pytest.param({"batch": 1}, id="batch-1"),
    pytest.param({"min_duration": 2.0, "max_duration": 2.0}, id="min-equals-max"),
    pytest.param({"runs": 1, "warmup": 0, "min_duration": 0.0}, id="smallest"),
])
def test_settings_on_their_bounds_are_accepted(settings):
    assert bench.Settings(**settings).check() is not None


def test_a_negative_min_duration_is_refused():
    with pytest.raises(UsageError, match="--min-duration -1 s must be between 0"):
        bench.Settings(min_duration=-1).check()


def test_the_progress_bar_names_the_model_file(monkeypatch):
    from edgeops._progress import Bars

    calls = []
    monkeypatch.setattr(Bars, "update", lambda self, label, fraction: calls.append((label, fraction)))
    monkeypatch.setattr(Bars, "close", lambda self: calls.append("closed"))
    update, close = harness.progress_bar()
    update("models/v2/digits.onnx", 0.25)
    close()
    assert calls == [("bench digits.onnx", 0.25), "closed"]


# -- warnings on their thresholds -------------------------------------------------------------------------


@pytest.mark.parametrize("runs, expected", [
    pytest.param(99, "only 99 steady-state runs: p99 needs at least 100", id="99"),
    pytest.param(100, "only 100 steady-state runs: p99.9 needs at least 1000", id="100"),
    pytest.param(999, "only 999 steady-state runs: p99.9 needs at least 1000", id="999"),
    pytest.param(1000, None, id="1000"),
])
def test_too_few_runs_warn_up_to_the_counts_that_make_p99_and_p999_meaningful(clock, runs, expected):
    model, _ = timed_model(clock)
    warnings = bench_one(model, runs=runs)["warnings"]
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warnings[0].startswith(expected)


@pytest.mark.parametrize("last_tenth_ms, words", [
    pytest.param(1.0, None, id="steady"),
    pytest.param(1.2, None, id="exactly-1.2x"),
    pytest.param(1.25, "the last tenth of the run was 25% slower than the first", id="1.25x"),
])
def test_latency_drift_warns_above_a_fifth_slower(clock, last_tenth_ms, words):
    model, _ = timed_model(clock, lambda call: last_tenth_ms if call > 1 + 270 else 1.0)
    warnings = " | ".join(bench_one(model, runs=300, cv_warn=1.0)["warnings"])
    if words is None:
        assert "drift" not in warnings
    else:
        assert words in warnings


def test_a_first_tenth_too_fast_to_time_gives_no_drift_ratio(clock):
    model, _ = timed_model(clock, lambda call: 0.0 if call <= 1 + 30 else 1.0)
    assert not any("drift" in w for w in bench_one(model, runs=300, cv_warn=10.0)["warnings"])


@pytest.mark.parametrize("readings, words", [
    pytest.param([Reading(2000, None, None), Reading(1800, None, None)], None, id="freq-down-exactly-10pc"),
    pytest.param([Reading(2000, None, None), Reading(1799, None, None)], "fell from 2000 MHz to 1799 MHz",
                 id="freq-down-over-10pc"),
    pytest.param([Reading(None, 79.9, None)], None, id="79.9-C"),
    pytest.param([Reading(None, 80.0, None)], "reached 80 °C", id="80-C"),
    pytest.param([Reading(None, None, 0)], None, id="pi-flags-clear"),
])
def test_throttling_warns_on_its_thresholds(clock, readings, words):
    model, _ = timed_model(clock)
    warnings = " | ".join(bench_one(model, runs=20, probe=FixedProbe(readings))["warnings"])
    if words is None:
        assert "throttling" not in warnings
    else:
        assert words in warnings
