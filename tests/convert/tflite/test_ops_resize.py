"""Resize and Upsample convert and agree with onnxruntime: RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR
where a TFLite rule reads the same source pixels, a GATHER per axis for the other nearest modes,
in place on convolution outputs; cubic, crop-and-resize and mismatched linear sampling are refused."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgeops.convert.tflite import export
from edgeops.convert.tflite.ops.resize import _tflite_linear, _tflite_nearest
from edgeops.errors import UnsupportedOpsError

from .conftest import assert_parity, graph_model, node_model, run_tflite


def resize_model(shape, *, scales=None, sizes=None, opset=13, **attrs):
    inits = {"roi": np.zeros(0, np.float32), "scales": np.array(scales or [], np.float32)}
    if sizes is not None:
        inits["sizes"] = np.array(sizes, np.int64)
    return node_model("Resize", {"x": shape}, {"y": None}, inits, opset=opset, **attrs)


def feeds(rng, shape):
    return {"x": rng.standard_normal(shape).astype(np.float32)}


@pytest.mark.parametrize("ctm, nearest_mode, scales", [
    ("half_pixel", "round_prefer_floor", [1, 1, 2, 2]),
    ("half_pixel", "round_prefer_floor", [1, 1, 3, 2]),
    ("asymmetric", "floor", [1, 1, 2, 3]),
    ("asymmetric", "floor", [1, 1, 0.5, 0.5]),
    ("half_pixel", "round_prefer_floor", [1, 1, 0.5, 0.5]),
    ("align_corners", "round_prefer_ceil", [1, 1, 2, 2]),
    ("pytorch_half_pixel", "round_prefer_ceil", [1, 1, 2, 2]),
    ("tf_half_pixel_for_nn", "floor", [1, 1, 2, 2]),
], ids=["half-pixel-x2", "half-pixel-x3x2", "asymmetric-floor", "asymmetric-downsample", "half-pixel-downsample-ties",
        "align-corners",
        "pytorch-half-pixel", "tf-half-pixel-for-nn"])
def test_nearest_as_a_tflite_resize(rng, ctm, nearest_mode, scales):
    # (a 2x downsample with half_pixel + round_prefer_floor is a tie at every pixel, broken like TFLite's plain rule)
    model = resize_model((1, 3, 4, 6), scales=scales, mode="nearest", coordinate_transformation_mode=ctm,
                         nearest_mode=nearest_mode)
    exported = assert_parity(model, feeds(rng, (1, 3, 4, 6)))
    assert "RESIZE_NEAREST_NEIGHBOR" in exported.ops


@pytest.mark.parametrize("ctm, nearest_mode, scales, shape", [
    ("half_pixel", "round_prefer_floor", [1, 1, 0.75, 0.75], (1, 2, 4, 8)),
    ("asymmetric", "round_prefer_ceil", [1, 1, 2, 2], (1, 2, 4, 6)),
    ("align_corners", "floor", [1, 1, 2, 2], (1, 2, 4, 6)),
    ("half_pixel", "ceil", [1, 1, 1.5, 2], (1, 2, 4, 6)),
    ("asymmetric", "floor", [1, 2, 3], (1, 3, 5)),
    ("half_pixel", "round_prefer_floor", [1, 2, 2, 2, 1], (1, 2, 3, 2, 3)),
], ids=["downsample-by-0.75", "asymmetric-prefer-ceil", "align-corners-floor", "half-pixel-ceil", "3d", "5d-three-axes"])
def test_other_nearest_modes_gather_the_source_pixels(rng, ctm, nearest_mode, scales, shape):
    model = resize_model(shape, scales=scales, mode="nearest", coordinate_transformation_mode=ctm,
                         nearest_mode=nearest_mode)
    exported = assert_parity(model, feeds(rng, shape))
    assert "GATHER" in exported.ops and "RESIZE_NEAREST_NEIGHBOR" not in exported.ops


@pytest.mark.parametrize("ctm, scales, sizes", [
    ("half_pixel", [1, 1, 2, 2], None),
    ("half_pixel", [1, 1, 0.5, 0.5], None),
    ("half_pixel", None, [1, 3, 6, 9]),
    ("align_corners", None, [1, 3, 7, 11]),
    ("asymmetric", [1, 1, 2, 3], None),
    ("pytorch_half_pixel", [1, 1, 2, 2], None),
    ("half_pixel_symmetric", [1, 1, 2, 2], None),
], ids=["half-pixel-x2", "half-pixel-downsample", "half-pixel-sizes", "align-corners-sizes", "asymmetric",
        "pytorch-half-pixel", "half-pixel-symmetric-exact"])
def test_linear_as_resize_bilinear(rng, ctm, scales, sizes):
    opset = 19 if ctm == "half_pixel_symmetric" else 13
    model = resize_model((1, 3, 4, 6), scales=scales, sizes=sizes, opset=opset, mode="linear",
                         coordinate_transformation_mode=ctm)
    exported = assert_parity(model, feeds(rng, (1, 3, 4, 6)))
    assert "RESIZE_BILINEAR" in exported.ops


def test_sizes_with_axes_and_keep_aspect_ratio(rng):
    model = node_model("Resize", {"x": (1, 2, 4, 4)}, {"y": None}, {"roi": np.zeros(0, np.float32),
                       "scales": np.zeros(0, np.float32), "sizes": np.array([8, 12], np.int64)},
                       opset=18, mode="nearest", axes=[2, 3], keep_aspect_ratio_policy="not_larger")
    assert_parity(model, feeds(rng, (1, 2, 4, 4)))


@pytest.mark.parametrize("op, opset, mode, scales", [
    ("Resize", 10, "linear", [1, 1, 2, 2]), ("Resize", 10, "nearest", [1, 1, 2, 1.5]),
    ("Upsample", 9, "nearest", [1, 1, 2, 3]), ("Upsample", 7, "linear", [1.0, 1.0, 2.0, 2.0]),
], ids=["resize10-linear", "resize10-nearest", "upsample9-nearest", "upsample7-attribute"])
def test_old_resize_and_upsample(rng, op, opset, mode, scales):
    if opset < 9:
        model = node_model(op, {"x": (1, 2, 3, 3)}, {"y": None}, opset=opset, mode=mode, scales=scales)
    else:
        model = node_model(op, {"x": (1, 2, 3, 3)}, {"y": None}, {"scales": np.array(scales, np.float32)},
                           opset=opset, mode=mode)
    assert_parity(model, feeds(rng, (1, 2, 3, 3)))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_between_convs_runs_in_place_on_nhwc(rng, mode):
    g = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["a", "roi", "scales"], ["r"], mode=mode),
             helper.make_node("Conv", ["r", "w2"], ["y"])]
    inits = {"w": g.standard_normal((4, 1, 3, 3)).astype(np.float32), "roi": np.zeros(0, np.float32),
             "scales": np.array([1, 1, 2, 2], np.float32), "w2": g.standard_normal((1, 4, 1, 1)).astype(np.float32)}
    model = graph_model(nodes, {"x": [1, 1, 5, 5]}, {"y": None}, inits, opset=13)
    exported = assert_parity(model, feeds(rng, (1, 1, 5, 5)))
    assert "TRANSPOSE" not in exported.ops


@pytest.mark.parametrize("attrs, scales, shape, reason", [
    ({"mode": "cubic"}, [1, 1, 2, 2], (1, 1, 4, 4), "mode='cubic'"),
    ({"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"}, [1, 1, 2, 2], (1, 1, 4, 4),
     "tf_crop_and_resize"),
    ({"mode": "linear"}, [1, 1, 0.6, 0.6], (1, 1, 4, 4), "samples other source coordinates"),
    ({"mode": "linear"}, [1, 2, 3], (1, 3, 5), "4-D"),
    ({"mode": "linear", "antialias": 1}, [1, 1, 0.5, 0.5], (1, 1, 4, 4), "antialiased downsampling"),
], ids=["cubic", "crop-and-resize", "linear-inexact-scale", "linear-3d", "antialias"])
def test_refused_variants_say_why(attrs, scales, shape, reason):
    model = resize_model(shape, scales=scales, opset=18, **attrs)
    with pytest.raises(UnsupportedOpsError) as info:
        export(model)
    (name, op, why), = info.value.problems
    assert (name, op) == ("resize0", "Resize") and reason in why


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("align, half", [(False, False), (True, False), (False, True)], ids=["plain", "align", "half"])
def test_the_coordinate_model_matches_the_tflite_kernels(mode, align, half):
    """The converter's model of the TFLite kernels (which it compares ONNX against) is what LiteRT computes."""
    from edgeops.convert.tflite.writer import ModelWriter

    code, options = (("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions") if mode == "nearest"
                     else ("RESIZE_BILINEAR", "ResizeBilinearOptions"))
    model_of = _tflite_nearest if mode == "nearest" else _tflite_linear
    for n_in in range(1, 9):
        for n_out in range(1, 19):
            w = ModelWriter()
            x, y = w.tensor("x", (1, n_in, 1, 1)), w.tensor("y", (1, n_out, 1, 1))
            w.op(code, [x, w.const("size", np.array([n_out, 1], np.int32))], [y], options, alignCorners=align,
                 halfPixelCenters=half)
            w.inputs, w.outputs = [x], [y]
            got = run_tflite(w.serialize(["x"], ["y"]), {"x": np.arange(n_in, dtype=np.float32).reshape(1, n_in, 1, 1)})
            np.testing.assert_allclose(got["y"].reshape(-1), model_of(n_in, n_out, align, half), atol=1e-5,
                                       err_msg=f"{n_in} -> {n_out}")
