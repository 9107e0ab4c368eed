"""Output drift: the profile records each output's histogram and the top-1 classes; a running model's outputs
compared with them (digits_mlp from examples/models, real onnxruntime): a shifted input population shows in the
outputs and the predicted classes, the same population does not; an old profile (no ``classes``) still works."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import edgeops
from edgeops.monitor.output_drift import OutputDrift, monitor_outputs
from edgeops.validate.profile import build_profile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
MLP = EXAMPLES / "digits_mlp.onnx"
TEST = np.load(EXAMPLES / "digits_mlp_test.npz")["pixels"]
CALIB = np.load(EXAMPLES / "digits_mlp_calib.npz")["pixels"]
LABELS = np.load(EXAMPLES / "digits_test_labels.npy")


@pytest.fixture(scope="module")
def profile():
    return build_profile(edgeops.load(MLP), {"pixels": CALIB})


def watch(profile, rows) -> dict:
    model = edgeops.load(MLP)
    drift = OutputDrift(profile, [o.name for o in model.outputs])
    for row in rows:
        drift.update(model.run(row[None]))
    return drift.snapshot(reset=True)


def test_the_profile_records_the_top1_classes(profile):
    hist = profile["classes"]["probabilities"]["histogram"]
    assert hist["edges"] == [c - 0.5 for c in range(11)]
    model = edgeops.load(MLP)
    top = np.argmax(model.run(CALIB)["probabilities"], axis=1)
    assert hist["counts"] == np.bincount(top, minlength=10).tolist()


def test_the_same_population_is_stable(profile):
    snap = watch(profile, TEST)  # held-out data from the same source as the calibration set
    assert snap["classes"]["probabilities"]["psi_level"] == "stable", snap["classes"]
    assert snap["outputs"]["probabilities"]["psi"] < 0.1
    assert snap["max_psi"] < 0.1
    assert snap["window_samples"] == len(TEST)


def test_a_shifted_population_moves_outputs_and_classes(profile):
    shifted = TEST[LABELS[:len(TEST)] <= 2]  # the device now sees almost only zeros, ones and twos
    snap = watch(profile, np.concatenate([shifted] * 3))
    assert snap["classes"]["probabilities"]["psi_level"] == "shifted", snap["classes"]
    assert snap["max_psi"] > 0.2
    dimmed = watch(profile, TEST * 0.3)  # a sensor that reads darker: the scores lose confidence
    assert dimmed["outputs"]["probabilities"]["psi"] > 0.2


def test_an_old_profile_without_classes_still_monitors_outputs():
    old = json.loads((EXAMPLES / "digits_mlp.profile.json").read_text())
    assert "classes" not in old
    drift = monitor_outputs(edgeops.load(MLP), old)
    assert drift is not None and drift.classes is None
    model = edgeops.load(MLP)
    for row in TEST[:100]:
        drift.update(model.run(row[None]))
    snap = drift.snapshot()
    assert snap["outputs"]["probabilities"]["samples"] == 1000 and snap["classes"] == {}


def test_a_profile_without_outputs_gives_no_monitor():
    assert monitor_outputs(edgeops.load(MLP), {"version": 1, "inputs": {}}) is None


def test_agent_telemetry_carries_output_drift(tmp_path, profile):
    from edgeops.agent import Agent
    from edgeops.agent.transport import MemoryTransport

    model = edgeops.load(MLP)
    agent = Agent(model, transport=MemoryTransport(), fleet="demo", device="pi-01", store_dir=str(tmp_path),
                  interval_s=60, profile=profile)
    for row in TEST[:200]:
        model.run(row[None])
    out = agent.telemetry_now()["output_drift"]
    assert out["enabled"] and out["classes"]["probabilities"]["samples"] == 200
    assert set(out["outputs"]["probabilities"]) >= {"psi", "counts", "reference", "ref"}
