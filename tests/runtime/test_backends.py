"""Both engines behind the same Model: threads, concurrency, dynamic batch, the CNN example."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import edgeops
from tests.conftest import needs_ort, needs_tflite

MODELS = [
    pytest.param("digits_mlp.onnx", "pixels", marks=needs_ort, id="onnx-mlp"),
    pytest.param("digits_cnn.onnx", "image", marks=needs_ort, id="onnx-cnn"),
    pytest.param("digits_mlp.tflite", "pixels", marks=needs_tflite, id="tflite-mlp"),
]


@pytest.mark.parametrize("name, key", MODELS)
@pytest.mark.parametrize("threads", [1, 2])
def test_accuracy_through_the_runtime(examples, digits, name, key, threads):
    m = edgeops.load(examples / name, threads=threads)
    probs = m.run(digits[key])["probabilities"]
    assert np.mean(probs.argmax(1) == digits["labels"]) > 0.95


@pytest.mark.parametrize("name, key", MODELS)
def test_concurrent_runs_from_several_threads_give_the_serial_answers(examples, digits, name, key):
    m = edgeops.load(examples / name)
    x = digits[key]
    want = [m.run(x[i:i + 1])["probabilities"] for i in range(64)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: m.run(x[i:i + 1])["probabilities"], range(64)))
    for w, g in zip(want, got):
        np.testing.assert_array_equal(w, g)
    assert m.stats.snapshot()["count"] >= 120  # lock-free counters may drop a rare increment


@pytest.mark.parametrize("name, key", MODELS)
def test_batch_sizes_change_between_calls(examples, digits, name, key):
    m = edgeops.load(examples / name)
    x = digits[key]
    full = m.run(x[:16])["probabilities"]
    for n in (1, 5, 16, 3):
        np.testing.assert_allclose(m.run(x[:n])["probabilities"], full[:n], atol=1e-6)


@pytest.mark.parametrize("name", [pytest.param("digits_mlp.onnx", marks=needs_ort),
                                  pytest.param("digits_mlp.tflite", marks=needs_tflite)])
def test_describe_and_sha256(examples, name):
    import hashlib

    m = edgeops.load(examples / name)
    d = m.describe()
    assert d["format"] == name.rsplit(".", 1)[1]
    assert d["inputs"][0]["shape"] == [None, 64]
    assert d["backend_version"]
    assert m.sha256 == hashlib.sha256((examples / name).read_bytes()).hexdigest()
