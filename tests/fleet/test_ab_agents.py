"""A/B with real agents end to end: two in-process agents on a real mosquitto, one on digits_mlp (1.0) and one on a
perturbed copy some ten points worse (2.0); labels arrive later on each device's feedback topic, the collector
stores the telemetry, and ``accuracy_by_version`` on the store tells the versions apart (and not two equal ones)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("paho.mqtt.client")
pytest.importorskip("onnxruntime")

import edgeops
from edgeops.agent import Agent
from edgeops.fleet.abstats import accuracy_by_version, compare
from edgeops.fleet.collector import Collector
from edgeops.fleet.store import open_store
from tests.agent.test_shadow import MLP, perturb
from tests.agent.waiting import wait_until

EXAMPLES = MLP.parent
X = np.load(EXAMPLES / "digits_mlp_test.npz")["pixels"]
Y = np.load(EXAMPLES / "digits_test_labels.npy")


def publisher(url: str):
    import paho.mqtt.client as mqtt

    from edgeops.agent.transport import parse_url

    host, port, _ = parse_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="labeller")
    client.connect(host, port)
    client.loop_start()
    return client


def run_ab(broker, tmp_path, models: dict[str, tuple[str, object]]) -> dict:
    """Each device runs the whole test set; its labels come back later in batches of 90; returns the A/B stats."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = open_store(str(tmp_path / "fleet.sqlite"))
    collector = Collector(store, broker.url, "demo", client_id="c-ab").start(wait_s=10)
    labeller = publisher(broker.url)
    agents = []
    try:
        since = int(time.time() * 1000) - 1000
        for device, (version, path) in models.items():
            agent = Agent(edgeops.load(path), broker=broker.url, fleet="demo", device=device, interval_s=0.3,
                          store_dir=str(tmp_path / device), model_version=version, labels={"site": device[:1]})
            agents.append(agent.start())
            assert wait_until(lambda d=device: store.device("demo", d) is not None, timeout=15)  # subscribed by now
            ids = [agent.model.run_with_id(X[i][None])[0] for i in range(len(X))]
            for start in range(0, len(ids), 90):
                batch = [{"request_id": r, "label": int(y)} for r, y in zip(ids[start:start + 90], Y[start:start + 90])]
                labeller.publish(f"edgeops/demo/{device}/feedback", json.dumps({"labels": batch}), qos=1)

        def stats():
            return accuracy_by_version(store, "demo", since)

        assert wait_until(lambda: all(stats().get(v, {}).get("n") == len(X) for v, _ in models.values()), timeout=30), \
            stats()
        return stats()
    finally:
        for agent in agents:
            agent.stop()
        labeller.loop_stop()
        labeller.disconnect()
        collector.stop()
        store.close()


def truth(path) -> int:
    return int(np.sum(np.argmax(edgeops.load(path).run(X)["probabilities"], axis=1) == Y))


def test_a_version_ten_points_worse_is_told_apart_and_equal_ones_are_not(broker, tmp_path):
    worse = perturb(tmp_path / "worse.onnx", 0.6)
    good_right, worse_right = truth(MLP), truth(worse)
    assert 0.05 < (good_right - worse_right) / len(X) < 0.2  # the candidate really is about ten points worse
    ab = run_ab(broker, tmp_path / "ab", {"a1": ("1.0", MLP), "b1": ("2.0", worse)})
    assert (ab["1.0"]["correct"], ab["2.0"]["correct"]) == (good_right, worse_right)
    assert ab["2.0"]["by_label"]["site=b"]["n"] == len(X)
    diff = compare(ab, "1.0", "2.0")
    assert diff["hi"] < 0, diff  # 2.0 is worse, and the interval says so

    same = run_ab(broker, tmp_path / "same", {"a1": ("1.0", MLP), "b1": ("1.1", MLP)})
    diff = compare(same, "1.0", "1.1")
    assert diff["lo"] < 0 < diff["hi"], diff
