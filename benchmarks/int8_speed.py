"""int8 vs fp32 on a real-size conv net, per runtime, with a per-op breakdown (issue 12, item 3).

Builds a MobileNetV2-shaped net in ONNX (random weights, BatchNormalization with randomized
statistics, no torch needed) with ReLU6 or HardSwish activations (MobileNetV3's), converts it
through ``edgeops.convert`` to fp32 and static int8 ONNX and TFLite in a temporary folder, and
then:

1. times the four models interleaved in one process (each round runs every model once, in
   rotating order; ``edgeops.load``, one thread), and prints p50 and int8/fp32 per runtime;
2. onnxruntime per op type: ``SessionOptions.enable_profiling`` on the session options
   ``edgeops.load`` uses (graph optimizations on), kernel time per run;
3. LiteRT per op type: the XNNPACK plan (which ops the delegate runs, how many partitions),
   and each operator cut out into a one-op model and timed with XNNPACK (interleaved, fp32
   and int8), summed per op type and type.

    python benchmarks/int8_speed.py [--size 224] [--activation both|relu6|hardswish] [--rounds 40]

Nothing is written outside the temporary folder; the models are built at run time.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

import edgeops

# MobileNetV2: (expansion, out channels, repeats, first stride)
BLOCKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


# ---- the net ----------------------------------------------------------------------------------
class _Net:
    """MobileNetV2's layers with random weights. BatchNormalization statistics are those of the
    data (measured layer by layer, as training leaves them) times a random perturbation, so
    activations keep realistic ranges through the 52 convolutions instead of growing without bound."""

    def __init__(self, activation: str, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.activation = activation
        self.weights: dict[str, np.ndarray] = {}
        self.stats: dict[str, np.ndarray] = {}  # "<conv>.mean" / "<conv>.var"
        self.convs: list[str] = []
        self.n = 0

    def _name(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.n}"

    def conv_bn(self, nodes: list[Any], x: str, cin: int, cout: int, k: int, stride: int, groups: int,
                act: bool) -> str:
        from onnx import helper

        p = self._name("conv")
        if p + ".w" not in self.weights:
            self.weights[p + ".w"] = self.rng.normal(0, np.sqrt(2.0 / (cin // groups * k * k)), (cout, cin // groups, k, k))
            self.weights[p + ".gamma"] = self.rng.uniform(0.5, 1.5, cout)
            self.weights[p + ".beta"] = self.rng.uniform(-0.2, 0.2, cout)
            self.stats.setdefault(p + ".mean", np.zeros(cout))
            self.stats.setdefault(p + ".var", np.ones(cout))
            self.convs.append(p)
        nodes.append(helper.make_node("Conv", [x, p + ".w"], [p], kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[k // 2] * 4, group=groups))
        nodes.append(helper.make_node("BatchNormalization", [p, p + ".gamma", p + ".beta", p + ".mean", p + ".var"],
                                      [p + ".bn"]))
        y = p + ".bn"
        if act:
            if self.activation == "hardswish":
                nodes.append(helper.make_node("HardSwish", [y], [p + ".act"]))
            else:
                nodes.append(helper.make_node("Clip", [y, "zero", "six"], [p + ".act"]))
            y = p + ".act"
        return y

    def build(self, size: int, *, batch: Any = 1, stats_as_inputs: bool = False) -> Any:
        from onnx import TensorProto, helper, numpy_helper

        self.n, nodes = 0, []
        x, c = self.conv_bn(nodes, "input", 3, 32, 3, 2, 1, True), 32
        for t, cout, repeats, stride in BLOCKS:
            for r in range(repeats):
                s = stride if r == 0 else 1
                h = c * t
                y = self.conv_bn(nodes, x, c, h, 1, 1, 1, True) if t != 1 else x
                y = self.conv_bn(nodes, y, h, h, 3, s, h, True)
                y = self.conv_bn(nodes, y, h, cout, 1, 1, 1, False)
                if s == 1 and c == cout:
                    out = self._name("add")
                    nodes.append(helper.make_node("Add", [x, y], [out]))
                    y = out
                x, c = y, cout
        x = self.conv_bn(nodes, x, c, 1280, 1, 1, 1, True)
        nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
        nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"]))
        if "fc.w" not in self.weights:
            self.weights["fc.w"] = self.rng.normal(0, np.sqrt(1.0 / 1280), (1000, 1280))
            self.weights["fc.b"] = np.zeros(1000)
        nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1))
        consts = {**self.weights, "zero": np.array(0.0), "six": np.array(6.0)}
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])]
        outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 1000])]
        if stats_as_inputs:  # for fitting: statistics fed at run time, every conv's raw output visible
            inputs += [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape)) for k, v in self.stats.items()]
            outputs += [helper.make_tensor_value_info(p, TensorProto.FLOAT, None) for p in self.convs]
        else:
            consts.update(self.stats)
        inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()]
        graph = helper.make_graph(nodes, "mobilenet_v2_like", inputs, outputs, inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    def fit_batchnorm(self, size: int, x: np.ndarray) -> None:
        """Each BatchNormalization's statistics from the data reaching it, in order, perturbed
        (mean +- 0.1 std, variance x 0.7-1.4)."""
        import onnxruntime as ort

        self.build(size)  # registers every conv
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(self.build(size, batch="N", stats_as_inputs=True).SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        for p in self.convs:
            feeds = {"input": x, **{n: v.astype(np.float32) for n, v in self.stats.items()}}
            raw = sess.run([p], feeds)[0]
            mean, var = raw.mean(axis=(0, 2, 3)), raw.var(axis=(0, 2, 3)) + 1e-5
            self.stats[p + ".mean"] = mean + self.rng.uniform(-0.1, 0.1, mean.shape) * np.sqrt(var)
            self.stats[p + ".var"] = var * self.rng.uniform(0.7, 1.4, var.shape)


def build(folder: str, activation: str, size: int, samples: int) -> tuple[str, str]:
    import onnx

    rng = np.random.default_rng(1)
    data = rng.normal(0, 1, (samples, 3, size, size)).astype(np.float32)
    net = _Net(activation)
    net.fit_batchnorm(size, data)
    path = os.path.join(folder, f"mbv2_{activation}_{size}.onnx")
    onnx.save(net.build(size), path)
    calib = os.path.join(folder, f"mbv2_{activation}_{size}_calib.npz")
    np.savez(calib, input=data)
    return path, calib


# ---- end-to-end timing ------------------------------------------------------------------------
def interleaved_p50(paths: dict[str, str], x: np.ndarray, rounds: int) -> dict[str, float]:
    """p50 ms per model; each round runs every model once, the order rotating each round."""
    models = {k: edgeops.load(p, threads=1) for k, p in paths.items()}
    feeds = {k: {m.inputs[0].name: x} for k, m in models.items()}
    for k, m in models.items():
        for _ in range(3):
            m.run(feeds[k])
    keys, times = list(models), {k: [] for k in models}
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t = time.perf_counter()
            models[k].run(feeds[k])
            times[k].append(time.perf_counter() - t)
    return {k: float(np.median(v) * 1e3) for k, v in times.items()}


# ---- onnxruntime per op type --------------------------------------------------------------------
def ort_profile(path: str, x: np.ndarray, runs: int) -> dict[str, tuple[float, int]]:
    """{op type: (ms per run, nodes)} from onnxruntime's profiler, after its graph optimizations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(os.path.dirname(path), "ortprof")
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(runs):
        sess.run(None, feed)
    with open(sess.end_profiling()) as fh:
        events = json.load(fh)
    total: dict[str, float] = collections.defaultdict(float)
    nodes: dict[str, set[str]] = collections.defaultdict(set)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"]
            nodes[e["args"]["op_name"]].add(e["name"])
    return {k: (v / runs / 1e3, len(nodes[k])) for k, v in total.items()}


# ---- LiteRT per op ---------------------------------------------------------------------------
def single_op_models(data: bytes) -> list[tuple[str, str, bytes]]:
    """``(op code, output type, one-op .tflite)`` for each operator of subgraph 0: its constant
    inputs kept, the others made graph inputs."""
    import copy

    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    codes = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k.lower() for k, v in vars(tfl.TensorType).items() if not k.startswith("_")}
    model = tfl.ModelT.InitFromPackedBuf(data, 0)
    g = model.subgraphs[0]
    out = []
    for op in g.operators:
        opcode = model.operatorCodes[op.opcodeIndex]
        new = tfl.ModelT()
        new.version, new.description = 3, "one op"
        new.operatorCodes = [opcode]
        new.buffers = [tfl.BufferT()]
        sub = tfl.SubGraphT()
        sub.tensors, remap = [], {}
        for t in [int(i) for i in list(op.inputs) + list(op.outputs) if i >= 0]:
            if t in remap:
                continue
            tensor = copy.copy(g.tensors[t])
            buf = model.buffers[tensor.buffer]
            if buf.data is not None and len(buf.data):
                b = tfl.BufferT()
                b.data = buf.data
                tensor.buffer = len(new.buffers)
                new.buffers.append(b)
            else:
                tensor.buffer = 0
            remap[t] = len(sub.tensors)
            sub.tensors.append(tensor)
        o = copy.copy(op)
        o.opcodeIndex = 0
        o.inputs = [remap[int(i)] if i >= 0 else -1 for i in op.inputs]
        o.outputs = [remap[int(i)] for i in op.outputs]
        sub.operators = [o]
        sub.inputs = [remap[int(i)] for i in op.inputs if i >= 0 and new.buffers[sub.tensors[remap[int(i)]].buffer].data is None]
        sub.outputs = list(o.outputs)
        new.subgraphs = [sub]
        builder = flatbuffers.Builder(1024)
        builder.Finish(new.Pack(builder), file_identifier=b"TFL3")
        out.append((codes[opcode.builtinCode], types[g.tensors[op.outputs[0]].type], bytes(builder.Output())))
    return out


def _interpreter(data: bytes, xnnpack: bool = True) -> Any:
    from ai_edge_litert import interpreter as litert

    kwargs: dict[str, Any] = {}
    if not xnnpack:
        kwargs["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with contextlib.redirect_stderr(io.StringIO()):
        it = litert.Interpreter(model_content=data, num_threads=1, **kwargs)
        it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        dt = np.dtype(d["dtype"])
        a = rng.integers(-128, 127, d["shape"]) if dt.kind in "iu" else rng.normal(0, 1, d["shape"])
        it.set_tensor(d["index"], a.astype(dt))
    return it


def litert_per_op(models: dict[str, bytes], rounds: int) -> dict[str, dict[str, tuple[float, int, int]]]:
    """{model: {"CODE (type)": (ms per run summed over its ops, ops, ops on XNNPACK)}}, every one-op
    model timed with XNNPACK, interleaved across models and ops, p50 over ``rounds``."""
    from edgeops.convert.tflite.xnnpack import plan

    cases = []
    for name, data in models.items():
        for code, dtype, one in single_op_models(data):
            it = _interpreter(one)
            delegated = any(n["op_name"] == "DELEGATE" for n in it._get_ops_details())  # noqa: SLF001
            cases.append((name, f"{code} ({dtype})", delegated, it))
        del data
    times: list[list[float]] = [[] for _ in cases]
    for r in range(rounds):
        order = range(len(cases)) if r % 2 == 0 else reversed(range(len(cases)))
        for i in order:
            invoke = cases[i][3].invoke
            t = time.perf_counter()
            invoke()
            times[i].append(time.perf_counter() - t)
    result: dict[str, dict[str, list[float]]] = {name: {} for name in models}
    for (name, key, delegated, _), ts in zip(cases, times):
        row = result[name].setdefault(key, [0.0, 0, 0])
        row[0] += float(np.median(ts) * 1e3)
        row[1] += 1
        row[2] += int(delegated)
    for name, data in models.items():
        print(f"  {name}: {plan(data).describe()}")
    return {name: {k: (v[0], v[1], v[2]) for k, v in rows.items()} for name, rows in result.items()}


# ---- report -----------------------------------------------------------------------------------
def _table(title: str, columns: dict[str, dict[str, tuple]], fmt: Any) -> None:
    keys = sorted({k for col in columns.values() for k in col},
                  key=lambda k: -max(col.get(k, (0,))[0] for col in columns.values()))
    print(f"  {title:34s}" + "".join(f"{c:>26s}" for c in columns))
    for k in keys:
        print(f"  {k:34s}" + "".join(f"{fmt(col[k]) if k in col else '-':>26s}" for col in columns.values()))
    print(f"  {'total':34s}" + "".join(f"{sum(v[0] for v in col.values()):>17.3f} ms     " for col in columns.values()))


def run(activation: str, size: int, rounds: int, samples: int, tmp: str) -> dict[str, float]:
    src, calib = build(tmp, activation, size, samples)
    paths, reports = {}, {}
    for fmt in ("onnx", "tflite"):
        for mode in ("fp32", "int8"):
            out = os.path.join(tmp, f"{activation}_{mode}.{fmt}")
            with contextlib.redirect_stderr(io.StringIO()):
                reports[(fmt, mode)] = edgeops.convert(src, out, quantize="none" if mode == "fp32" else "int8",
                                                       calibration=calib if mode == "int8" else None, profile=False)
            paths[f"{fmt} {mode}"] = out
    print(f"\n== MobileNetV2-like, {activation}, {size}x{size}, batch 1, 1 thread "
          f"(ONNX {os.path.getsize(src) / 2**20:.1f} MiB) ==")
    for (fmt, mode), rep in reports.items():
        if mode == "int8":
            print(f"  {fmt} int8: {os.path.getsize(paths[f'{fmt} {mode}']) / 2**20:.1f} MiB; " + "; ".join(
                s for s in rep.steps if "int8" in s or "HardSwish" in s or "reduce_range" in s))
    x = np.random.default_rng(2).normal(0, 1, (1, 3, size, size)).astype(np.float32)
    outs = {k: next(iter(edgeops.load(p, threads=1).run({"input": x}).values())).ravel() for k, p in paths.items()}
    for fmt in ("onnx", "tflite"):
        a, b = outs[f"{fmt} fp32"], outs[f"{fmt} int8"]
        print(f"  {fmt}: int8 vs fp32 output cosine {float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))):.4f}")
    p50 = interleaved_p50(paths, x, rounds)
    ratios = {}
    for fmt, runtime in (("onnx", "onnxruntime"), ("tflite", "LiteRT (XNNPACK)")):
        f, i = p50[f"{fmt} fp32"], p50[f"{fmt} int8"]
        ratios[runtime] = i / f
        print(f"  {runtime:18s} fp32 p50 {f:8.3f} ms   int8 p50 {i:8.3f} ms   int8/fp32 = {i / f:.2f}")
    print("\n  onnxruntime, kernel time per run by op type (profiler, optimized graph):")
    prof = {m: ort_profile(paths[f"onnx {m}"], x, max(5, rounds // 4)) for m in ("fp32", "int8")}
    _table("op type", prof, lambda v: f"{v[0]:8.3f} ms  ({v[1]:3d} nodes)")
    print("\n  LiteRT, each op as a one-op model on XNNPACK, by op type (sum of p50s):")
    with open(paths["tflite fp32"], "rb") as f32, open(paths["tflite int8"], "rb") as i8:
        per_op = litert_per_op({"fp32": f32.read(), "int8": i8.read()}, max(7, rounds // 3))
    _table("op (output type)", per_op, lambda v: f"{v[0]:8.3f} ms  ({v[1]:3d} ops, {v[2]:3d} xnn)")
    return ratios


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--activation", choices=("both", "relu6", "hardswish"), default="both")
    ap.add_argument("--rounds", type=int, default=40, help="interleaved end-to-end rounds")
    ap.add_argument("--samples", type=int, default=8, help="calibration samples")
    args = ap.parse_args()
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    print("CPU int8 dot-product support:",
          ", ".join(f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f" {f}" in flags) or "none (no VNNI)")
    summary = {}
    with tempfile.TemporaryDirectory(prefix="edgeops-int8-speed-") as tmp:
        for act in (("relu6", "hardswish") if args.activation == "both" else (args.activation,)):
            summary[act] = run(act, args.size, args.rounds, args.samples, tmp)
    print("\n== int8/fp32 p50 ==")
    for act, ratios in summary.items():
        print(f"  {act:10s} " + "   ".join(f"{k}: {v:.2f}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
