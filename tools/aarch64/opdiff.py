"""Find which TFLite kernel gives different numbers on aarch64 than on x86 (investigation helper).

  build DIR            one-op fp32 .tflite models from tiny ONNX graphs (+ DIR/<name>.npz inputs); needs onnx;
                       --dynamic: weight ops converted with quantize="dynamic" (int8 weights, hybrid kernels)
  run DIR OUT.npz      every DIR/*.tflite with XNNPACK and with builtin kernels; --dump also keeps every
                       tensor of the builtin run (experimental_preserve_all_tensors) and the op order,
                       for sample --sample K of test.npz (default 0); outputs are kept for every sample
  compare A.npz B.npz  per model and kernel path the max relative difference of the outputs; with dumps,
                       the first op (in execution order) whose output differs

Run `run` with the same LiteRT on both machines (x86 and the aarch64 root under qemu), then `compare` on x86;
opdiff_origin.py names the kernels that differ on identical inputs, opdiff_requant.py tests an int8 conv's rounding.
In the chroot, bind /sys as run.sh does: without it cpuinfo fails and XNNPACK's results change.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def _models():
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    rng = np.random.default_rng(0)

    def model(nodes, inputs, output, out_shape, inits=None, opset=17):
        g = helper.make_graph(
            nodes, "t", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
            [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in (inits or {}).items()])
        return shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]))

    def one(op, shape, inits=None, opset=17, **attrs):
        names = ["x", *(inits or {})]
        return model([helper.make_node(op, names, ["y"], **attrs)], {"x": shape}, "y", None, inits, opset)

    def w(*shape, s=0.3):
        return (rng.standard_normal(shape) * s).astype(np.float32)

    n = helper.make_node
    s = (1, 16, 64)
    img = (1, 8, 16, 16)
    erf_gelu = model([n("Div", ["x", "sq2"], ["a"]), n("Erf", ["a"], ["b"]), n("Add", ["b", "one"], ["c"]),
                      n("Mul", ["x", "c"], ["d"]), n("Mul", ["d", "half"], ["y"])], {"x": s}, "y", s,
                     {"sq2": np.float32(2 ** 0.5), "one": np.float32(1), "half": np.float32(0.5)})
    layernorm = model([n("ReduceMean", ["x"], ["m"], axes=[-1]), n("Sub", ["x", "m"], ["d"]),
                       n("Mul", ["d", "d"], ["d2"]), n("ReduceMean", ["d2"], ["v"], axes=[-1]),
                       n("Add", ["v", "eps"], ["ve"]), n("Sqrt", ["ve"], ["sd"]), n("Div", ["d", "sd"], ["y"])],
                      {"x": s}, "y", s, {"eps": np.float32(1e-5)})
    return {
        "gelu_erf_fused": (erf_gelu, s, 3.0),
        "gelu_onnx20": (one("Gelu", s, opset=20), s, 3.0),
        "gelu_tanh": (one("Gelu", s, opset=20, approximate="tanh"), s, 3.0),
        "logistic": (one("Sigmoid", s), s, 4.0),
        "tanh": (one("Tanh", s), s, 2.0),
        "hard_swish": (one("HardSwish", s), s, 4.0),
        "exp": (one("Exp", s), s, 2.0),
        "softmax": (one("Softmax", s, axis=-1), s, 3.0),
        "mean": (one("ReduceMean", s, axes=[-1], keepdims=1), s, 1.0),
        "rsqrt_sqrt": (model([n("Abs", ["x"], ["a"]), n("Sqrt", ["a"], ["y"])], {"x": s}, "y", s), s, 1.0),
        "rsqrt": (model([n("Abs", ["x"], ["a"]), n("Add", ["a", "eps"], ["b"]), n("Sqrt", ["b"], ["c"]),
                         n("Reciprocal", ["c"], ["y"])], {"x": s}, "y", s, {"eps": np.float32(1e-3)}), s, 1.0),
        "log": (model([n("Abs", ["x"], ["a"]), n("Log", ["a"], ["y"])], {"x": s}, "y", s), s, 2.0),
        "div": (one("Div", s, {"d": w(64) + 2.0}), s, 1.0),
        "layernorm": (layernorm, s, 1.0),
        "layernorm_onnx": (one("LayerNormalization", s, {"g": w(64) + 1, "b": w(64)}, axis=-1), s, 1.0),
        "conv_2d": (one("Conv", img, {"w": w(16, 8, 3, 3), "b": w(16)}, pads=[1, 1, 1, 1]), img, 1.0),
        "depthwise_conv_2d": (one("Conv", img, {"w": w(8, 1, 3, 3), "b": w(8)}, pads=[1, 1, 1, 1], group=8), img, 1.0),
        "fully_connected": (one("Gemm", (4, 64), {"w": w(64, 32), "b": w(32)}), (4, 64), 1.0),
        "batch_matmul": (model([n("MatMul", ["x", "x2"], ["y"])], {"x": (2, 16, 32), "x2": (2, 32, 16)}, "y", None),
                         (2, 16, 32), 1.0),
        "resize_bilinear": (one("Resize", img, {"roi": np.zeros(0), "sc": [1, 1, 2, 2]}, mode="linear"), img, 1.0),
        "resize_nearest": (one("Resize", img, {"roi": np.zeros(0), "sc": [1, 1, 2, 2]}, mode="nearest"), img, 1.0),
    }


def _dynamic_models():
    """Ops with weights, sized like vit_tiny's and mobilenet's, for ``quantize="dynamic"`` (hybrid kernels)."""
    from onnx import TensorProto, helper, numpy_helper, shape_inference

    rng = np.random.default_rng(2)

    def one(op, shape, inits, out, **attrs):
        g = helper.make_graph([helper.make_node(op, ["x", *inits], ["y"], **attrs)], "t",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)],
                              [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
        return shape_inference.infer_shapes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))

    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    img = (1, 32, 16, 16)
    return {
        "dyn_fully_connected": (one("MatMul", (65, 768), {"w": w(768, 192)}, (65, 192)), None, 1.0),
        "dyn_fully_connected_bias": (one("Gemm", (65, 192), {"w": w(768, 192), "b": w(768)}, (65, 768), transB=1), None, 1.0),
        "dyn_conv_2d": (one("Conv", img, {"w": w(64, 32, 3, 3), "b": w(64)}, (1, 64, 16, 16), pads=[1, 1, 1, 1]), None, 1.0),
        "dyn_depthwise_conv_2d": (one("Conv", img, {"w": w(32, 1, 3, 3), "b": w(32)}, img, pads=[1, 1, 1, 1], group=32),
                                  None, 1.0),
    }


def build(out: Path, dynamic: bool = False) -> None:
    import tempfile

    import onnx

    import edgeops
    from edgeops.convert.tflite import export

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name, (m, _shape, scale) in (_dynamic_models() if dynamic else _models()).items():
        if dynamic:  # the path zoo "fp32" twins took: edgeops.convert(target="rpi4") defaults to dynamic
            with tempfile.TemporaryDirectory() as tmp:
                onnx.save(m, f"{tmp}/m.onnx")
                edgeops.convert(f"{tmp}/m.onnx", str(out / f"{name}.tflite"), quantize="dynamic")
        else:
            exp = export(m)
            (out / f"{name}.tflite").write_bytes(exp.data)
        feeds = {i.name: (rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]) * scale)
                 .astype(np.float32) for i in m.graph.input}
        np.savez(out / f"{name}.npz", **feeds)
        print(name, "dynamic" if dynamic else exp.ops)


def _feeds(path: Path, interp, sample: int = 0) -> dict[int, np.ndarray]:
    """Inputs for ``path``: ``<stem>.npz`` (one-op models) or one sample of ``test.npz`` (zoo twins)."""
    own = path.with_suffix(".npz")
    with np.load(own if own.exists() else path.parent / "test.npz") as f:
        arrays = [f[k] for k in f.files]
    feeds = {}
    for d, a in zip(interp.get_input_details(), arrays):
        want = tuple(d["shape"])
        if not own.exists():
            a = a[sample:sample + 1]
        if a.shape != want and a.ndim == 4:
            a = a.transpose(0, 2, 3, 1)
        if a.shape != want and a.ndim == 3:
            a = a.transpose(0, 2, 1)
        assert a.shape == want, (path, a.shape, want)
        if d["dtype"] != np.float32:
            sc, zp = d["quantization"]
            info = np.iinfo(d["dtype"])
            a = np.clip(np.round(a / sc) + zp, info.min, info.max)
        feeds[d["index"]] = np.ascontiguousarray(a.astype(d["dtype"]))
    return feeds


def _samples(path: Path) -> int:
    if path.with_suffix(".npz").exists():
        return 1
    with np.load(path.parent / "test.npz") as f:
        return len(f[f.files[0]])


def run(src: Path, out: Path, dump: bool, dump_sample: int = 0) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    saved: dict[str, np.ndarray] = {}
    paths = sorted(src.glob("*.tflite")) if src.is_dir() else [src]
    for path in paths:
        for kind in ("xnnpack", "builtin"):
            kw = {"num_threads": 1}
            if kind == "builtin":
                kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                kw["experimental_preserve_all_tensors"] = dump
            it = Interpreter(model_path=str(path), **kw)
            it.allocate_tensors()
            outs: dict[str, list[np.ndarray]] = {}
            for i in [j for j in range(_samples(path)) if j != dump_sample] + [dump_sample]:  # dumped one last
                for idx, a in _feeds(path, it, i).items():
                    it.set_tensor(idx, a)
                it.invoke()
                for d in it.get_output_details():
                    outs.setdefault(d["name"], [None] * _samples(path))[i] = it.get_tensor(d["index"])
            for name, arrays in outs.items():
                saved[f"{path.stem}|{kind}|out|{name}"] = np.concatenate(arrays)
            if kind == "builtin" and dump:
                ops = [{"name": o["op_name"], "outputs": [int(t) for t in o["outputs"]]} for o in it._get_ops_details()]
                saved[f"{path.stem}|ops"] = np.array(json.dumps(ops))
                for t in it.get_tensor_details():
                    try:
                        saved[f"{path.stem}|t|{t['index']}"] = np.array(it.get_tensor(t["index"]))
                        saved[f"{path.stem}|q|{t['index']}"] = np.array(t["quantization"], np.float64)
                        saved[f"{path.stem}|n|{t['index']}"] = np.array(t["name"])
                    except ValueError:
                        pass
        print(path.name, "done", flush=True)
    np.savez(out, **saved)


def _rel(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = float(np.max(np.abs(a - b))) if a.size else 0.0
    return d, d / max(float(np.max(np.abs(a))), 1e-30)


def compare(pa: Path, pb: Path) -> None:
    a, b = np.load(pa), np.load(pb)
    print("| model | kernels | output | max abs | max rel (of max abs) | worst sample |\n| --- | --- | --- | --- | --- | --- |")
    for k in a.files:
        if "|out|" in k:
            m, kind, _, name = k.split("|", 3)
            d, r = _rel(a[k], b[k])
            per = np.abs(a[k].astype(np.float64) - b[k]).reshape(len(a[k]), -1).max(axis=1)
            print(f"| {m} | {kind} | {name} | {d:.3g} | {r:.3g} | {int(np.argmax(per)) if d else '-'} |")
    for k in a.files:
        if not k.endswith("|ops"):
            continue
        m = k[:-4]
        shown = 0
        for i, op in enumerate(json.loads(str(a[k]))):
            for t in op["outputs"]:
                key = f"{m}|t|{t}"
                if key not in a.files or key not in b.files:
                    continue
                x, y = a[key], b[key]
                if np.array_equal(x, y):
                    continue
                d, r = _rel(x, y)
                diff = x.astype(np.int64) - y.astype(np.int64) if x.dtype.kind == "i" else x - y
                where = np.flatnonzero(diff)
                extra = ""
                if x.dtype.kind == "i":
                    extra = f" steps: {np.unique(diff[diff != 0], return_counts=True)} in {where.size}/{x.size}"
                print(f"{m}: op #{i} {op['name']} -> t{t} {a[f'{m}|n|{t}']} {x.dtype} max abs {d:.3g} rel {r:.3g}"
                      f"{extra}")
                shown += 1
            if shown >= 4:
                break


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "build":
        build(Path(args[0]), "--dynamic" in args)
    elif cmd == "run":
        run(Path(args[0]), Path(args[1]), "--dump" in args,
            int(args[args.index("--sample") + 1]) if "--sample" in args else 0)
    elif cmd == "compare":
        compare(Path(args[0]), Path(args[1]))
    else:
        sys.exit(__doc__)
