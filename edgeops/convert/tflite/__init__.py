"""TensorFlow-free ONNX -> TFLite export (``edgeops convert --format tflite``).

``export(model_proto)`` returns the ``.tflite`` bytes; the op converters live in ``ops/``, one
module per family, registered into ``registry.REGISTRY``; ``writer.ModelWriter`` serializes with
LiteRT's own flatbuffer schema module; ``context.Context`` tracks layouts so NCHW graphs become
NHWC TFLite graphs with transposes only at the edges.
"""

from __future__ import annotations

from .catalog import supported_ops_table
from .exporter import Exported, export
from .registry import REGISTRY

__all__ = ["export", "Exported", "REGISTRY", "supported_ops_table"]
