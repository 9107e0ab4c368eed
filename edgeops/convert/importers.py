"""Importers: PyTorch modules (through torch's ONNX export) and scikit-learn estimators (through skl2onnx).

Both write an ONNX file and hand it to :func:`edgeops.convert.convert` with the
remaining keyword arguments. torch and skl2onnx are optional and imported here only.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any

from ..errors import BackendUnavailableError, UsageError


def from_torch(module: Any, example_inputs: Any, output: str | os.PathLike[str], *,
               input_names: list[str] | None = None, output_names: list[str] | None = None,
               dynamic_batch: bool = True, opset: int = 17, **convert_kwargs: Any) -> Any:
    """Export ``module`` with ``torch.onnx.export`` and convert the result (same keywords as ``convert``)."""
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError("from_torch needs PyTorch: pip install torch") from exc
    from .api import convert

    examples = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    names = input_names or [f"input{i}" if len(examples) > 1 else "input" for i in range(len(examples))]
    outs = output_names or ["output"]
    axes = {n: {0: "batch"} for n in names + outs} if dynamic_batch else None
    module = module.eval()
    with tempfile.TemporaryDirectory(prefix="edgeops-torch-") as tmp:
        path = os.path.join(tmp, "exported.onnx")
        try:
            with torch.no_grad(), warnings.catch_warnings():
                # the TorchScript exporter needs no onnxscript; torch >= 2.9 warns that it is the legacy path
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(module, examples, path, input_names=names, output_names=outs,
                                  dynamic_axes=axes, opset_version=opset, dynamo=False)
        except Exception as exc:
            raise UsageError(f"torch.onnx.export failed: {str(exc).splitlines()[0][:300]}") from exc
        return convert(path, output, **convert_kwargs)


def from_sklearn(estimator: Any, output: str | os.PathLike[str], *, n_features: int | None = None,
                 input_name: str = "input", **convert_kwargs: Any) -> Any:
    """Convert a fitted scikit-learn estimator with skl2onnx (float32 input ``[N, n_features]``)."""
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:
        raise BackendUnavailableError("from_sklearn needs skl2onnx: pip install 'edgeops[sklearn]'") from exc
    from .api import convert

    n = n_features or getattr(estimator, "n_features_in_", None)
    if not n:
        raise UsageError("give n_features: the estimator does not say how many features it takes")
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    try:
        onx = convert_sklearn(estimator, initial_types=[(input_name, FloatTensorType([None, int(n)]))],
                              options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    except Exception as exc:
        raise UsageError(f"skl2onnx cannot convert {type(estimator).__name__}: {str(exc).splitlines()[0][:300]}") from exc
    with tempfile.TemporaryDirectory(prefix="edgeops-sklearn-") as tmp:
        path = os.path.join(tmp, "exported.onnx")
        with open(path, "wb") as fh:
            fh.write(onx.SerializeToString())
        return convert(path, output, **convert_kwargs)
