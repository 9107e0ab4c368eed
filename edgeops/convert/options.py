"""What ``edgeops.convert`` can be asked to do: :class:`ConvertOptions` and the values its fields take.

Each choice has one list in the code, and the ``edgeops convert`` command line builds its options from it,
so a value added there is one the command line takes: ``--calibration-method`` from
:data:`CALIBRATION_METHODS` here, ``--format``, ``--quantize`` and ``--target`` from :mod:`edgeops.targets`
(:data:`~edgeops.targets.FORMATS`, :data:`~edgeops.targets.QUANTIZATION_MODES`, :data:`~edgeops.targets.TARGETS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..targets import FORMATS, Target
from ..targets import QUANTIZATION_MODES as MODES

if TYPE_CHECKING:  # pragma: no cover
    from ..validate.gates import Gates

__all__ = ["ConvertOptions", "MODES", "FORMATS", "CALIBRATION_METHODS"]

CALIBRATION_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
"""How static int8 activation ranges come from the calibration data, ``--calibration-method``, each with
the ``onnxruntime.quantization.CalibrationMethod`` member that does it."""


@dataclass(frozen=True)
class ConvertOptions:
    """Everything ``edgeops.convert(model, output, ...)`` takes besides its two paths; every field has a default.

    ``edgeops.convert(src, out, quantize="int8", calibration="calib.npz")`` and
    ``edgeops.convert(src, out, options=ConvertOptions(quantize="int8", calibration="calib.npz"))`` do the
    same; keywords given with ``options`` replace those fields of it. Values are checked by ``convert``,
    before any work, and a bad one is a :class:`~edgeops.UsageError` that names the option.
    """

    target: str | Target | None = None
    """Device target name (:data:`edgeops.targets.TARGETS`) or a :class:`~edgeops.targets.Target`;
    ``None`` is ``generic-cpu``. It decides which formats and quantization modes are allowed."""

    quantize: str | None = None
    """One of :data:`MODES`; ``None``: int8 with ``calibration`` when the target takes it, else the
    target's default mode (``dynamic`` where the target's default is int8 and no data is given)."""

    calibration: str | None = None
    """Calibration data file (.npz/.npy, DESIGN.md "Data files") for static int8; also builds the
    reference data profile written next to the model."""

    calibration_method: str = "minmax"
    """One of :data:`CALIBRATION_METHODS`: observed range, KL divergence (clips rare outliers), or the
    99.999th percentile."""

    per_channel: bool | None = None
    """Weight quantization per output channel (``None``: yes) or per tensor."""

    input_shapes: Mapping[str, tuple[int, ...]] | None = None
    """Input name -> full shape, fixing dynamic dims (``--input-shape NAME:D1,D2,...``)."""

    exclude_nodes: Sequence[str] = ()
    """Node names kept in float: ONNX output, and TFLite output with static int8."""

    exclude_op_types: Sequence[str] = ()
    """Op types kept in float (e.g. ``Softmax``); ONNX output only."""

    format: str | None = None
    """Output format, a value of :data:`FORMATS`; ``None``: from the output's extension. ``tflite`` exports
    without TensorFlow and quantizes with ai-edge-quantizer; ``c`` writes ``NAME.c``/``NAME.h`` with the
    model as a byte array."""

    validate: str | None = None
    """A data file: run ``edgeops.validate`` of the result against the source model on it, and refuse to
    write a model that fails ``gates`` unless ``force``."""

    labels: str | None = None
    """Labels (.npy) for ``validate``."""

    gates: Gates | None = None
    """Limits for ``validate`` (:class:`edgeops.validate.Gates`)."""

    force: bool = False
    """Write the model even when it fails ``gates``."""

    profile: bool = True
    """Write the reference data profile (``NAME.profile.json``) when there is calibration or validation data."""

    reduce_range: bool | None = None
    """Static int8 weights in 7 bits. ``None``: on for x86-64 targets when the model has convolutions (CPUs
    without VNNI sum uint8 x int8 pairs into saturating int16, which hurts per-channel convolution models),
    off for Arm targets and for Gemm/MatMul-only models; :func:`edgeops.convert.quantize.weight_bits`
    decides and the report says which and why."""

    channels_last: bool = False
    """TFLite and C output: NHWC inputs and outputs instead of the ONNX layout."""

    int8_io: bool = False
    """TFLite and C output with static int8: int8 inputs and outputs instead of float32."""

    fix_inputs: Mapping[str, Any] | None = None
    """Input name -> value(s) (``--fix-input``): those inputs become constants and the graph is folded
    around them (:mod:`edgeops.convert.fix_inputs`); an ``If`` on them becomes the branch taken."""

    float_tail: int = 0
    """Static int8: keep the last N compute layers and everything after them in float, as ``exclude_nodes``
    keeps the nodes it names, for ONNX and TFLite alike (:mod:`edgeops.convert.float_tail`): the fix for
    detection and segmentation heads that int8 hurts."""

    codegen: bool = False
    """Format ``c`` with static int8: compile the model to C source that calls edgeops' own kernels
    (:mod:`edgeops.convert.codegen`, ``firmware_bridge/``) instead of writing it as a byte array for
    TFLite Micro."""

    codegen_blob: bool = False
    """With ``codegen``: the generated code reads its constant arrays (weights, biases, per-channel
    multipliers, tables) through a pointer, ``NAME_invoke_blob`` (CODEGEN.md, "Constants in a blob"), so a
    firmware can take new weights for the same graph as a model image (:mod:`edgeops.bridge.image`)."""

