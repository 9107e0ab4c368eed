"""``[workload] labels``: the replay feeds each run's true label back, so telemetry counts online accuracy."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import edgeops
from edgeops.agent.workload import load_labels, replay
from edgeops.errors import DataError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
SAMPLE = EXAMPLES / "digits_mlp_test.npz"
LABELS = EXAMPLES / "digits_test_labels.npy"


def test_the_replay_labels_every_run_and_the_counts_match_the_truth():
    model = edgeops.load(str(EXAMPLES / "digits_mlp.onnx"))
    log = model.keep_predictions(version="1.0")
    x, y = np.load(SAMPLE)["pixels"], np.load(LABELS)
    stop = threading.Event()
    calls = []
    orig = model.run_with_id

    def counted(inputs):
        calls.append(1)
        if len(calls) >= len(x):
            stop.set()
        return orig(inputs)

    model.run_with_id = counted
    ran = replay(model, str(SAMPLE), 10000, stop, labels=str(LABELS))
    counts = log.snapshot()["1.0"]
    right = int(np.sum(np.argmax(model.run(x[:ran])["probabilities"], axis=1) == y[:ran]))
    assert ran == len(x) and counts["n"] == ran and counts["correct"] == right


@pytest.mark.parametrize("content", [b"not numpy", None], ids=["garbage", "two-arrays"])
def test_a_bad_labels_file_is_a_clear_error(tmp_path, content):
    bad = tmp_path / "labels.npz"
    if content is None:
        np.savez(bad, a=np.zeros(3), b=np.zeros(3))
    else:
        bad.write_bytes(content)
    with pytest.raises(DataError, match=r"\[workload\] labels"):
        load_labels(str(bad))


def test_the_agent_config_takes_workload_labels(tmp_path):
    from edgeops.agent.config import load_config

    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[broker]\nurl = "mqtt://127.0.0.1:1883"\n[device]\nfleet = "demo"\nid = "pi-1"\n'
                   f'[model]\npath = "{EXAMPLES / "digits_mlp.onnx"}"\n[workload]\ndata = "{SAMPLE}"\nlabels = "{LABELS}"\n')
    assert load_config(str(cfg)).workload_labels == str(LABELS)
