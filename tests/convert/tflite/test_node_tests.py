"""onnx's own backend node tests, run through the exporter and LiteRT for every op we register:
a suite written by others, which catches what our parity tests miss. A refused variant (float64,
uint16, training mode ...) must be refused with a reason; a wrong answer or a crash fails."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from edgeops.convert.tflite import nodetests
from edgeops.convert.tflite.catalog import load_all, supported_ops_table

DOC = Path(__file__).resolve().parents[3] / "docs" / "tflite_ops.md"


@functools.lru_cache(maxsize=1)
def outcomes():
    return tuple(nodetests.run_case(c) for c in nodetests.node_tests())


@pytest.mark.parametrize("op", sorted(load_all()))
def test_node_tests_of_each_registered_op(op):
    mine = [o for o in outcomes() if o.op_type == op]
    bad = [f"{o.test}: {o.status} {o.detail}" for o in mine if o.status in ("fail", "error")]
    assert not bad, "\n".join(bad)
    assert all(o.detail for o in mine if o.status == "unsupported")  # every refusal says why


# ops whose node tests are all variants TFLite cannot hold; tests/convert/tflite covers them in float32
NO_PASSABLE_NODE_TEST = {"ReduceLogSumExp": "every node test is float64",
                         "If": "every node test's condition is an input (tests/convert/test_fix_input.py fixes it)"}


def test_every_registered_op_has_node_tests_that_pass():
    passed = {o.op_type for o in outcomes() if o.status == "pass"}
    assert set(load_all()) - passed <= set(NO_PASSABLE_NODE_TEST)


def test_the_supported_ops_doc_is_current():
    doc = DOC.read_text()
    if nodetests.versions() not in doc:  # results differ a little between onnxruntime releases
        pytest.skip(f"docs/tflite_ops.md was generated with other versions than {nodetests.versions()}")
    table = supported_ops_table(nodetests.summarize(list(outcomes())))
    assert table in doc, "regenerate: python -m edgeops.convert.tflite.nodetests --markdown docs/tflite_ops.md"
