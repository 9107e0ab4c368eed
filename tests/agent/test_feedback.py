"""Online evaluation on the device: request ids on Model.run, Model.feedback, and labels that arrive later in
batches on ``edgeops/<fleet>/<device>/feedback`` through a real mosquitto, counted per model version in telemetry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import edgeops
from edgeops.agent import Agent
from edgeops.agent.online import parse_labels
from edgeops.errors import DataError, UsageError
from edgeops.runtime.feedback import FeedbackLog
from tests.agent.waiting import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
MLP = EXAMPLES / "digits_mlp.onnx"
X = np.load(EXAMPLES / "digits_mlp_test.npz")["pixels"]
Y = np.load(EXAMPLES / "digits_test_labels.npy")


def test_each_run_has_a_request_id_and_run_keeps_its_return_type():
    model = edgeops.load(MLP)
    out = model.run(X[0][None])
    assert isinstance(out, dict) and set(out) == {"probabilities"}
    first = model.last_request_id
    rid, out2 = model.run_with_id(X[1][None])
    assert isinstance(first, int) and rid != first and model.last_request_id == rid and 0 < rid < 2 ** 53
    model.run(X[2][None], request_id="order-17")
    assert model.last_request_id == "order-17"


def test_model_feedback_counts_right_and_wrong_answers():
    model = edgeops.load(MLP)
    with pytest.raises(UsageError, match="keep_predictions"):
        model.feedback(1, 3)
    log = model.keep_predictions(version="1.0")
    right = 0
    for i in range(50):
        rid, out = model.run_with_id(X[i][None])
        right += int(np.argmax(out["probabilities"]) == Y[i])
        assert model.feedback(rid, int(Y[i]))
    assert not model.feedback(rid, 3)  # labelled once
    assert not model.feedback(123, 3)  # never seen
    counts = log.snapshot()
    assert counts == {"1.0": {"n": 50, "correct": right, "abs_err_sum": float(50 - right)}}
    assert 40 <= right <= 50  # the example model is a good one
    assert log.unmatched == 2


def test_regression_outputs_count_absolute_error():
    log = FeedbackLog(keep=2, tolerance=0.5)
    log.record(1, {"y": np.array([[2.0]])}, "1")
    log.record(2, {"y": np.array([[4.0]])}, "1")
    log.record(3, {"y": np.array([[5.0]])}, "2")  # the oldest (1) is forgotten
    assert not log.label(1, 2.0)
    assert log.label(2, 3.0) and log.label(3, 5.25)
    assert log.snapshot() == {"1": {"n": 1, "correct": 0, "abs_err_sum": 1.0},
                              "2": {"n": 1, "correct": 1, "abs_err_sum": 0.25}}
    log.record(4, {"y": np.array([[1.0]])}, "1")
    with pytest.raises(DataError):
        log.label(4, "cat")


@pytest.mark.parametrize("payload", [b"[1, 2]", b'{"labels": 3}', b'{"labels": [{"request_id": true, "label": 1}]}',
                                     b"not json"], ids=["not-objects", "not-a-list", "bool-id", "not-json"])
def test_malformed_feedback_is_refused(payload):
    with pytest.raises(DataError):
        parse_labels(payload)


def test_labels_arriving_later_on_the_feedback_topic_land_in_telemetry(broker, collector, tmp_path):
    c = collector("edgeops/demo/#")
    model = edgeops.load(MLP)
    with Agent(model, broker=broker.url, fleet="demo", device="pi-01", store_dir=str(tmp_path / "store"),
               interval_s=0.3, model_version="1.0"):
        # subscribed (in the connect callback) well before its first telemetry reaches us
        assert wait_until(lambda: c.payloads("edgeops/demo/pi-01/telemetry"), timeout=10)
        ids, right = [], 0
        for i in range(120):
            rid, out = model.run_with_id(X[i][None])
            ids.append(rid)
            right += int(np.argmax(out["probabilities"]) == Y[i])
        # two batches from elsewhere, a while later; one label names a run this device never made
        batches = [[{"request_id": r, "label": int(y)} for r, y in zip(ids[:60], Y[:60])],
                   [{"request_id": r, "label": int(y)} for r, y in zip(ids[60:], Y[60:120])]
                   + [{"request_id": 17, "label": 1}]]
        for batch in batches:
            c.client.publish("edgeops/demo/pi-01/feedback", json.dumps({"labels": batch}), qos=1)
        c.client.publish("edgeops/demo/pi-01/feedback", b'{"labels": "oops"}', qos=1)

        def counted():
            total = {"n": 0, "correct": 0}
            for p in c.payloads("edgeops/demo/pi-01/telemetry"):
                for version, counts in json.loads(p).get("feedback", {}).items():
                    assert version == "1.0"
                    total["n"] += counts["n"]
                    total["correct"] += counts["correct"]
            return total

        assert wait_until(lambda: counted()["n"] >= 120, timeout=15), (counted(), c.payloads("edgeops/demo/pi-01/events"))
        assert wait_until(lambda: any(json.loads(p)["kind"] == "feedback.error"
                                      for p in c.payloads("edgeops/demo/pi-01/events")), timeout=10)
    assert counted() == {"n": 120, "correct": right}
    last = json.loads(c.payloads("edgeops/demo/pi-01/telemetry")[-1])
    assert last["feedback_unmatched"] == 1


def test_big_outputs_are_kept_within_the_byte_bound():
    log = FeedbackLog(keep=1000, max_bytes=10 * 4000)
    for rid in range(100):
        log.record(rid, {"mask": np.zeros((1, 10, 100), np.float32)}, "1")  # a mask, 4,000 bytes each
    assert len(log._runs) == 10 and log._bytes == 40_000
    assert not log.label(0, 0) and log.label(99, [0.0] * 1000)
    assert log._bytes == 36_000


def test_a_stopped_agent_lets_go_of_the_model_and_a_restarted_one_watches_again(tmp_path):
    from edgeops.agent.transport import MemoryTransport

    model = edgeops.load(MLP)
    agent = Agent(model, transport=MemoryTransport(), fleet="demo", device="pi-01", store_dir=str(tmp_path),
                  interval_s=60)
    with agent:
        assert model.result_observer == agent.online.on_result
    assert model.result_observer is None
    rid, _ = model.run_with_id(X[0][None])
    assert not agent.feedback(rid, int(Y[0]))  # not recorded while stopped
    agent.start()
    try:
        rid, _ = model.run_with_id(X[0][None])
        assert agent.feedback(rid, int(Y[0]))
    finally:
        agent.stop()
