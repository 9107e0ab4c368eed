"""The benchmark harness: phases apart, varied inputs, stop rules, system readings and warnings."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from edgeops import bench
from edgeops.bench import FixedProbe, Reading
from edgeops.errors import DataError, InputShapeError, UsageError
from edgeops.runtime import FunctionBackend, Model, TensorSpec
from edgeops.runtime.preprocess import Preprocess
from tests.conftest import needs_ort, needs_tflite

F32 = np.dtype("float32")
JSON_KEYS = {"model", "backend", "threads", "init_ms", "first_inference_ms", "warmup", "runs", "latency_ms", "cv",
             "throughput_per_s", "peak_rss_mb", "rss_delta_mb", "cpu_percent", "warnings"}
LATENCY_KEYS = {"mean", "std", "min", "p50", "p90", "p95", "p99", "p999", "max"}


def recording_model(shape=(None, 4), delay=lambda i: 0.0):
    """A Model over a Python function that records every input it sees and sleeps ``delay(i)`` seconds."""
    seen = []

    def fn(x):
        seen.append(x.copy())
        d = delay(len(seen))
        if d:
            time.sleep(d)
        return {"y": x.sum(axis=-1)}

    model = Model(FunctionBackend(fn, [TensorSpec("x", shape, F32)], [TensorSpec("y", None, F32)]))
    return model, seen


QUIET = FixedProbe([Reading(2000.0, 50.0, 0)])


@pytest.mark.parametrize("name", [pytest.param("digits_mlp.onnx", marks=needs_ort),
                                  pytest.param("digits_mlp.tflite", marks=needs_tflite)])
def test_real_models_report_every_phase_and_statistic(examples, name):
    (r,) = bench.run([examples / name], runs=200, warmup=5, min_duration=0, threads=1)
    d = r.to_dict()
    assert JSON_KEYS <= set(d)
    assert set(d["latency_ms"]) == LATENCY_KEYS
    lat = d["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert d["runs"] == 200 and d["warmup"]["count"] == 5
    assert d["init_ms"] > 0 and d["first_inference_ms"] > 0
    assert d["throughput_per_s"] == pytest.approx(200 / d["duration_s"])
    assert d["peak_rss_mb"] > 10 and d["cpu_percent"] > 0
    assert d["backend"] in ("onnxruntime", "litert", "tflite-runtime")
    assert "samples_ms" not in d and len(r.to_dict(samples=True)["samples_ms"]) == 200


def test_the_harness_runs_through_model_run():
    model, seen = recording_model()
    bench.run([model], runs=30, warmup=4, min_duration=0, probe=QUIET)
    assert model.stats.count == 1 + 4 + 30  # first inference, warmup, steady state
    assert len(seen) == 35


def test_inputs_vary_from_run_to_run_and_follow_the_seed():
    model, seen = recording_model()
    bench.run([model], runs=40, warmup=0, min_duration=0, seed=3, probe=QUIET)
    assert all(not np.array_equal(a, b) for a, b in zip(seen, seen[1:]))
    assert len({a.tobytes() for a in seen}) > 20
    model2, seen2 = recording_model()
    bench.run([model2], runs=40, warmup=0, min_duration=0, seed=3, probe=QUIET)
    assert all(np.array_equal(a, b) for a, b in zip(seen, seen2))


def test_batch_fills_the_dynamic_batch_axis():
    model, seen = recording_model()
    bench.run([model], runs=5, warmup=0, min_duration=0, batch=8, probe=QUIET)
    assert {a.shape for a in seen} == {(8, 4)}


def test_other_dynamic_dims_need_an_input_shape():
    model, seen = recording_model(shape=(None, None))
    with pytest.raises(UsageError, match="--input-shape x:"):
        bench.run([model], runs=5, min_duration=0, probe=QUIET)
    bench.run([model], runs=5, warmup=0, min_duration=0, input_shapes={"x": (2, 7)}, probe=QUIET)
    assert {a.shape for a in seen} == {(2, 7)}


def test_inputs_from_a_data_file(tmp_path):
    data = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.savez(tmp_path / "d.npz", x=data)
    model, seen = recording_model()
    bench.run([model], runs=10, warmup=0, min_duration=0, batch=2, data=str(tmp_path / "d.npz"), probe=QUIET)
    for i, x in enumerate(seen[:8]):  # first inference, then the steady state: consecutive batches, cycling
        np.testing.assert_array_equal(x, data[(2 * i) % 10:(2 * i) % 10 + 2])
    np.save(tmp_path / "bad.npy", np.zeros((3, 5), np.float32))
    with pytest.raises(DataError, match=r"fewer than --batch"):
        bench.run([recording_model()[0]], runs=2, min_duration=0, batch=4, data=str(tmp_path / "bad.npy"), probe=QUIET)
    with pytest.raises(InputShapeError, match=r"input 'x' expects shape \[\?, 4\], got \[1, 5\]"):
        bench.run([recording_model()[0]], runs=2, min_duration=0, data=str(tmp_path / "bad.npy"), probe=QUIET)
    with pytest.raises(DataError, match="not found"):
        bench.run([model], runs=2, min_duration=0, data=str(tmp_path / "missing.npz"), probe=QUIET)


def test_end_to_end_times_the_preprocessing_too():
    model, seen = recording_model(shape=(None, 3, 2, 2))
    pre = Preprocess(scale=1 / 255, mean=(0.5,), std=(0.25,), layout="nhwc->nchw")
    (r,) = bench.run([model], runs=5, warmup=0, min_duration=0, preprocess=pre, probe=QUIET)
    assert r.to_dict()["end_to_end"] is True
    x = seen[-1]
    assert x.shape == (1, 3, 2, 2) and x.dtype == F32
    assert x.min() >= -2.0 and x.max() <= 2.0 and len(np.unique(x)) > 1  # (u8/255 - .5) / .25


def test_stop_rules_runs_min_and_max_duration():
    model, _ = recording_model()
    (r,) = bench.run([model], runs=7, warmup=0, min_duration=0, probe=QUIET)
    assert r.to_dict()["runs"] == 7
    (r,) = bench.run([model], runs=1, warmup=0, min_duration=0.2, probe=QUIET)
    assert r.to_dict()["duration_s"] >= 0.2 and r.to_dict()["runs"] > 1
    slow, _ = recording_model(delay=lambda i: 0.01)
    (r,) = bench.run([slow], runs=10_000, warmup=0, min_duration=0, max_duration=0.15, probe=QUIET)
    assert 1 <= r.to_dict()["runs"] < 100


@pytest.mark.parametrize("kwargs, words", [
    pytest.param({"runs": 0}, "--runs and --batch must be at least 1", id="zero-runs"),
    pytest.param({"batch": 0}, "--runs and --batch must be at least 1", id="zero-batch"),
    pytest.param({"warmup": -1}, "--warmup at least 0", id="negative-warmup"),
    pytest.param({"min_duration": 5, "max_duration": 1}, "--min-duration 5 s must be between 0 and --max-duration 1 s",
                 id="min-above-max"),
    pytest.param({"max_duration": 0}, "--max-duration must be above 0 s", id="zero-max"),
])
def test_bad_settings(kwargs, words):
    with pytest.raises(UsageError, match=re.escape(words)):
        bench.run([recording_model()[0]], probe=QUIET, **kwargs)


def test_a_short_max_duration_caps_the_default_min_duration():
    """Regression (issue 11): ``--runs 1 --max-duration 0.1`` failed over ``min-duration``, which the user never set
    (its default, 1 s, was above 0.1 s). The default now gives way to a shorter max-duration."""
    assert bench.Settings(runs=1, max_duration=0.1).check().min_duration == 0.1
    assert bench.Settings(runs=1).check().min_duration == 1.0
    model, _ = recording_model(delay=lambda i: 0.001)
    (r,) = bench.run([model], runs=1, warmup=0, max_duration=0.1, probe=QUIET)
    d = r.to_dict()

    assert d["duration_s"] >= 0.1 and d["runs"] > 1  # ran its 0.1 s, not a single run


def test_warmup_runs_stay_out_of_the_steady_state_percentiles():
    """Warmup (and first) runs are slow here, steady runs fast: every statistic must be the steady runs' alone.
    A run count alone did not catch warmup samples counted in the percentiles."""
    warmup = 12
    model, _ = recording_model(delay=lambda i: 0.02 if i <= 1 + warmup else 0.0)
    (r,) = bench.run([model], runs=200, warmup=warmup, min_duration=0, probe=QUIET)
    d = r.to_dict(samples=True)
    lat = d["latency_ms"]

    assert d["warmup"]["count"] == warmup and d["warmup"]["mean_ms"] >= 20
    assert d["first_inference_ms"] >= 20
    assert len(d["samples_ms"]) == 200 and max(d["samples_ms"]) < 10
    assert lat["max"] < 10 and lat["p99"] < 10 and lat["p999"] < 10 and lat["p50"] < 5
    assert lat["mean"] < 5


def warnings_of(model, probe=QUIET, **kwargs):
    (r,) = bench.run([model], warmup=0, min_duration=0, probe=probe, **kwargs)
    return " | ".join(r.to_dict()["warnings"])


def test_unstable_timings_warn():
    jittery, _ = recording_model(delay=lambda i: 0.004 if i % 3 == 0 else 0.0)
    assert "unstable timings" in warnings_of(jittery, runs=150)
    steady, _ = recording_model(delay=lambda i: 0.002)
    assert "unstable" not in warnings_of(steady, runs=150, cv_warn=0.5)


def test_too_few_runs_for_the_percentiles_warn():
    model, _ = recording_model()
    assert "only 20 steady-state runs: p99 needs" in warnings_of(model, runs=20)
    assert "p99.9 needs at least 1000" in warnings_of(model, runs=300)
    assert "steady-state runs" not in warnings_of(model, runs=1200)


@pytest.mark.parametrize("readings, words", [
    pytest.param([Reading(2400, 50, None), Reading(1500, 60, None)], "CPU frequency fell from 2400 MHz to 1500 MHz", id="freq-drop"),
    pytest.param([Reading(None, 70, None), Reading(None, 85, None)], "reached 85 °C", id="hot"),
    pytest.param([Reading(None, None, 0), Reading(None, None, 0x50005)], "get_throttled=0x50005", id="pi-flags"),
])
def test_throttling_warns(readings, words):
    model, _ = recording_model()
    assert words in warnings_of(model, probe=FixedProbe(readings), runs=20)


def test_latency_drift_warns():
    slowing, _ = recording_model(delay=lambda i: 0.0005 if i < 150 else 0.002)
    assert "latency drift" in warnings_of(slowing, runs=250)


def test_system_readings_are_reported():
    model, _ = recording_model()
    probe = FixedProbe([Reading(2400, 55.0, 0), Reading(2300, 61.0, 0)])
    (r,) = bench.run([model], runs=5, warmup=0, min_duration=0, probe=probe)
    sysinfo = r.to_dict()["system"]
    assert sysinfo["cpu_freq_mhz"] == {"start": 2400, "end": 2300, "min": 2300, "max": 2400}
    assert sysinfo["temperature_c"] == {"start": 55.0, "end": 61.0, "max": 61.0}
    assert sysinfo["cpu_count"] >= 1
