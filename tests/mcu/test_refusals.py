"""What the kernels would not compute as TFLite Micro does is refused: every such op listed with its
reason in one UnsupportedOpsError (exit code 2), and no file written."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from oneop import Spec, build  # noqa: E402

from edgeops.convert.codegen import generate_c  # noqa: E402
from edgeops.errors import UnsupportedOpsError  # noqa: E402

CASES = {
    "float op": (lambda: build("ADD", [Spec((1, 4), None, dtype=np.float32), Spec((1, 4), None, dtype=np.float32)],
                               [Spec((1, 4), 0.1, 0, dtype=np.float32)], "AddOptions"), "float32"),
    "no kernel": (lambda: build("FLOOR", [Spec((1, 4), 0.1, 0)], [Spec((1, 4), 0.1, 0)]), "no kernel"),
    "logistic output scale": (lambda: build("LOGISTIC", [Spec((1, 4), 0.1, 0)], [Spec((1, 4), 0.1, 0)]),
                              "TFLite Micro takes scale 1/256"),
    "softmax zero point": (lambda: build("SOFTMAX", [Spec((1, 4), 0.1, 0)], [Spec((1, 4), 1 / 256, 0)],
                                         "SoftmaxOptions", beta=1.0), "takes -128"),
    "pool rescale": (lambda: build("MAX_POOL_2D", [Spec((1, 4, 4, 1), 0.1, 0)], [Spec((1, 2, 2, 1), 0.2, 0)],
                                   "Pool2DOptions", padding=1, strideW=2, strideH=2, filterWidth=2, filterHeight=2),
                     "quantized differently"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_refused_with_the_reason_and_nothing_written(tmp_path, case):
    make, reason = CASES[case]
    with pytest.raises(UnsupportedOpsError) as err:
        generate_c(make(), tmp_path / "m_model.c")
    assert reason in str(err.value) and err.value.problems
    assert err.value.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_every_problem_is_listed_at_once(tmp_path):
    from oneop import quant

    from edgeops.convert.tflite.writer import ModelWriter

    w = ModelWriter()
    a, b, c = (w.tensor(n, (1, 4), np.int8) for n in ("a", "b", "c"))
    for i in (a, b, c):
        w.tensors[i].quantization = quant(0.1, 0)
    w.op("FLOOR", [a], [b])
    w.op("CEIL", [b], [c])
    w.inputs, w.outputs = [a], [c]
    with pytest.raises(UnsupportedOpsError) as err:
        generate_c(w.serialize(["a"], ["c"]), tmp_path / "m_model.c")
    assert {op for _, op, _ in err.value.problems} == {"FLOOR", "CEIL"}
