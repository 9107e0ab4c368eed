"""Shadow and A/B rollouts end to end: real agent processes (workload, [ota], labels fed back), a real
mosquitto, a real ``edgeops fleet serve`` running the controller.

* ``--ab 50`` with a candidate some ten points worse: the split's accuracy gate fails once the interval of the
  drop clears the threshold, and the updated half is rolled back; with an equal candidate the gate passes and
  the whole fleet gets it;
* ``--shadow`` with an identical candidate: agreement 1.0 on every device, the active model untouched, completed;
  with a perturbed one: the agreement gate halts it and every device drops its shadow (``shadow-stop``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("paho.mqtt")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("cryptography")

from edgeops.fleet.rollout import bucket  # noqa: E402
from tests.agent.test_ota import EXAMPLES, SAMPLE, ota_bundles  # noqa: E402, F401 - the fixture
from tests.agent.test_shadow import perturb  # noqa: E402
from tests.fleet.test_rollout import fleet, wait  # noqa: E402, F401 - the fixture

pytestmark = pytest.mark.slow

LABELS = EXAMPLES / "digits_test_labels.npy"


@pytest.fixture(scope="module")
def candidates(ota_bundles):  # noqa: F811
    """``worse``: digits_mlp with noise on its weights, some ten points less accurate; ``perturbed``: further off."""
    from edgeops.bundle import create

    out = {}
    for name, scale in (("worse", 0.6), ("perturbed", 1.0)):
        path = ota_bundles.dir / f"{name}.eob"
        if not path.exists():
            create(str(perturb(ota_bundles.dir / f"{name}.onnx", scale)), str(path), name="digits", version="2.0",
                   key=ota_bundles.key, sample=str(SAMPLE))
        out[name] = path
    return out


def _accuracy(bundle: Path) -> float:
    import edgeops

    x, y = np.load(SAMPLE)["pixels"], np.load(LABELS)
    return float(np.mean(np.argmax(edgeops.load(str(bundle)).run(x)["probabilities"], axis=1) == y))


def _split_id(devices: list[str], share: float, stem: str) -> str:
    """A rollout id whose sticky buckets put half the devices under ``share``: both arms of the A/B get devices."""
    for i in range(1000):
        rid = f"{stem}-{i}"
        if sum(bucket(rid, d) < share for d in devices) == len(devices) // 2:
            return rid
    raise AssertionError("no id splits the fleet")


def _start(f, bundle: Path, **spec) -> str:
    up = f.post("/api/bundles", Path(bundle).read_bytes(), "application/octet-stream")
    body = {"bundle": up["sha256"], "soak_s": 1.0, "flash_timeout_s": 40, **spec}
    return f.post("/api/rollouts", json.dumps(body).encode())["id"]


def _final(f, rid: str, timeout: float) -> dict:
    assert wait(lambda: f.status(rid).get("state") in ("completed", "rolled_back", "aborted"), timeout), \
        ([(g["metric"], g["value"], g["ok"]) for g in f.status(rid).get("gates") or [] if g["ok"] is not True], f.status(rid).get("counts"))
    return f.status(rid)


WORKLOAD = f'labels = "{LABELS}"'


def test_an_ab_split_stops_a_version_ten_points_worse_once_the_interval_says_so(fleet, ota_bundles, candidates):  # noqa: F811
    drop = _accuracy(ota_bundles.v1) - _accuracy(candidates["worse"])
    assert 0.05 < drop < 0.2, drop  # the candidate really is about ten points worse
    f = fleet(4, WORKLOAD)
    rid = _start(f, candidates["worse"], id=_split_id(f.devices, 50, "ab-worse"), ab=50,
                 gates=["p95_ratio<=3", "psi_in<=1", "accuracy_drop_ci_upper<=2pt"])
    st = _final(f, rid, 60)
    assert st["state"] == "rolled_back" and st["stage"] == 0, st
    assert "accuracy_drop_ci_upper" in st["reason"], st["reason"]
    gate = next(g for g in st["gates"] if g["metric"] == "accuracy_drop_ci_upper")
    assert gate["ok"] is False and gate["value"] > 0.02, gate
    assert sorted(d["ota_state"] for d in st["devices"]) == ["rolled_back", "rolled_back", "skipped", "skipped"]
    assert set(f.versions().values()) == {"1.0"}


def test_an_ab_split_with_an_equal_version_goes_on_to_the_whole_fleet(fleet, ota_bundles):  # noqa: F811
    f = fleet(4, WORKLOAD)
    rid = _start(f, ota_bundles.v2, id=_split_id(f.devices, 50, "ab-equal"), ab=50,
                 gates=["p95_ratio<=3", "psi_in<=1", "accuracy_drop_ci_upper<=3pt"])
    st = _final(f, rid, 240)
    assert st["state"] == "completed" and st["stages"] == [50.0, 100.0], (st, f.logs())
    assert set(f.versions().values()) == {"2.0"}
    assert st["reason"] is None


def test_a_shadow_rollout_of_an_identical_model_agrees_fully_and_leaves_the_active_model(fleet, ota_bundles):  # noqa: F811
    f = fleet(3)
    rid = _start(f, ota_bundles.v2, stages="100", shadow=0.5,
                 gates=["p95_ratio<=3", "psi_in<=1", "guardrail_rate_delta<=1", "shadow_agreement>=0.999", "shadow_samples>=30"])
    st = _final(f, rid, 60)
    assert st["state"] == "completed", (st["reason"], st["gates"], f.logs())
    gates = {g["metric"]: g for g in st["gates"]}
    assert gates["shadow_agreement"]["value"] == 1.0 and gates["shadow_samples"]["value"] >= 30, gates
    assert set(f.versions().values()) == {"1.0"}  # a shadow never becomes the active model


def test_a_shadow_rollout_of_a_perturbed_model_halts_and_every_device_drops_the_shadow(fleet, candidates):  # noqa: F811
    f = fleet(3)
    rid = _start(f, candidates["perturbed"], stages="100", shadow=0.5,
                 gates=["p95_ratio<=3", "psi_in<=1", "guardrail_rate_delta<=1", "shadow_agreement>=0.95", "shadow_samples>=30"])
    st = _final(f, rid, 60)
    assert st["state"] == "rolled_back" and "shadow_agreement" in st["reason"], (st, f.logs())
    gate = next(g for g in st["gates"] if g["metric"] == "shadow_agreement")
    assert gate["value"] < 0.95, gate
    assert {d["ota_state"] for d in st["devices"]} == {"rolled_back"}
    assert set(f.versions().values()) == {"1.0"}  # rolled_back: each one's telemetry since showed no shadow
