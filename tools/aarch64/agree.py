"""Do the example models give the same numbers on aarch64 as on x86-64?

Three steps, run by ``tools/aarch64/run.sh`` (the same inference-engine versions on both sides):

    python tools/aarch64/agree.py int8 DIR            # x86 host: int8 ONNX twins of the examples (target rpi4)
    python tools/aarch64/agree.py dump OUT.npz DIR    # each side: every model in examples/models and DIR
    python tools/aarch64/agree.py compare X86.npz AARCH64.npz   # the table; exit 1 on a mismatch
    python tools/aarch64/agree.py zoo ZOO DIR         # x86 host, optional: model-zoo models and twins

``zoo`` takes a built model zoo (``python -m benchmarks.zoo.build``; ``$EDGEOPS_AARCH64_ZOO`` in
run.sh) and writes, for each model of :data:`ZOO_MODELS`, ``DIR/zoo-NAME/`` with the fp32 ONNX, its
TFLite fp32 and static int8 twins (target rpi4, the zoo's calibration set) and the first
:data:`ZOO_SAMPLES` test inputs; ``dump`` runs those too when DIR is given.

``dump`` runs each model through ``edgeops.load`` on its held-out test split (360 digits; one at a
time where the model's batch is fixed at 1) and stores every output, the engine that ran it and
its version. ``compare`` runs where onnx and LiteRT are (the x86 side, edgeops[convert]): it reads
each int8 model's quantization step of the output (below) from the x86 side's copy of the file.

The rows of TFLite's builtin kernels (``(builtin kernels)``; edgeops runs XNNPACK by default) are
informational and never fail: those kernels requantize int8 CONV_2D / FULLY_CONNECTED results with
gemmlowp's double rounding on x86 and ruy's single rounding on arm64, which differ by one step just
beside a .5 boundary, and later layers carry the step on (tools/aarch64/opdiff*.py show it op by op).
XNNPACK's int8 kernels requantize in float on both (``qs8_qc8w_*_fp32``): equal outputs.

Agreement: fp32 models within 1e-5 relative (max |x86 - aarch64| / max |x86| per output); int8
models equal, or within one quantization step. The step of a float output computed from int8 is
the scale of the last int8 tensor before it: for an int8 SOFTMAX then DEQUANTIZE it is the
softmax's output scale; where a float tail follows the last DEQUANTIZE (SOFTMAX of dequantized
logits), one step of one logit moves a probability by at most scale/2, so that is the step; for
ONNX QDQ models it is the scale of the last QuantizeLinear, through the same softmax bound.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "models"
FAMILIES = ("mlp", "cnn", "mobilenet")
FP32_RTOL = 1e-5
# real-size models of each kind the zoo has that run in seconds under emulation: 1-D convs, hard-swish
# and SE, a detector's decode head, an LSTM, attention
ZOO_MODELS = ("kws_dscnn1d", "mobilenet_v3_small", "yolo_style", "crnn_text_rec", "vit_tiny")
ZOO_SAMPLES = 8


def family(path: Path) -> str:
    for name in FAMILIES:
        if path.name.startswith(f"digits_{name}"):
            return name
    raise SystemExit(f"{path}: not a digits example model")


def make_int8(out_dir: Path) -> None:
    import edgeops

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FAMILIES:
        src = EXAMPLES / f"digits_{name}.onnx"
        dst = out_dir / f"digits_{name}_int8.onnx"
        edgeops.convert(str(src), str(dst), target="rpi4", quantize="int8",
                        calibration=str(EXAMPLES / f"digits_{name}_calib.npz"))
        print(f"wrote {dst}")


def make_zoo(zoo: Path, out_dir: Path) -> None:
    import shutil

    import edgeops

    for name in ZOO_MODELS:
        src = zoo / name
        dst = out_dir / f"zoo-{name}"
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "model.onnx", dst / f"{name}.onnx")
        with np.load(src / "test.npz") as f:
            np.savez(dst / "test.npz", **{k: f[k][:ZOO_SAMPLES] for k in f.files})
        # quantize="none": the rpi4 target's TFLite default is dynamic range (int8 weights, activations
        # quantized at run time), which no two CPUs compute bit for bit (see the README's aarch64 section)
        edgeops.convert(str(src / "model.onnx"), str(dst / f"{name}.tflite"), target="rpi4", quantize="none")
        edgeops.convert(str(src / "model.onnx"), str(dst / f"{name}_int8.tflite"), target="rpi4", quantize="int8",
                        calibration=str(src / "calib.npz"))
        print(f"wrote {dst}")


def _run_each(model, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every sample through ``model``: as one batch, or one at a time where the batch is fixed at 1."""
    if model.inputs[0].shape[0] != 1:
        return model.run(data)
    n = len(next(iter(data.values())))
    outs = [model.run({k: v[i:i + 1] for k, v in data.items()}) for i in range(n)]
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


def _tflite_step(path: Path) -> float | None:
    from ai_edge_litert import schema_py_generated as schema  # the x86 side has edgeops[convert]

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    producer = {}
    for op in graph.operators:
        for t in op.outputs:
            producer[t] = op
    tensor = graph.outputs[0]
    float_tail = False
    while tensor in producer:
        op = producer[tensor]
        code = model.operatorCodes[op.opcodeIndex]
        opname = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
        q = graph.tensors[op.inputs[0]].quantization
        if opname == "DEQUANTIZE" and q is not None and q.scale is not None and len(q.scale):
            return float(q.scale[0]) / (2.0 if float_tail else 1.0)
        float_tail = True
        tensor = op.inputs[0]
    return None


def _onnx_step(path: Path) -> float | None:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    scale = None
    for node in graph.node:  # topological order: the last QuantizeLinear is nearest the output
        if node.op_type == "QuantizeLinear" and node.input[1] in inits:
            scale = float(np.asarray(inits[node.input[1]]).reshape(-1)[0])
    return None if scale is None else scale / 2.0


def dump(out: Path, extra: list[Path]) -> None:
    import edgeops

    models = sorted(EXAMPLES.glob("digits_*.onnx")) + sorted(EXAMPLES.glob("digits_*.tflite"))
    for d in extra:
        models += sorted(d.glob("digits_*.onnx")) + sorted(d.glob("digits_*.tflite"))
        models += sorted(d.glob("zoo-*/*.onnx")) + sorted(d.glob("zoo-*/*.tflite"))
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    runs = [(path, None) for path in models]
    # int8 .tflite files run twice: with XNNPACK (the default) and with TFLite's builtin reference
    # kernels, which tells a difference of XNNPACK's per-architecture int8 kernels from our converter's
    runs += [(path, "builtin") for path in models if path.suffix == ".tflite" and "int8" in path.name]
    for path, kernels in runs:
        model = edgeops.load(str(path), providers=["cpu"] if kernels else None)
        if path.parent.name.startswith("zoo-"):
            with np.load(path.parent / "test.npz") as f:
                data = {k: f[k] for k in f.files}
        else:
            with np.load(EXAMPLES / f"digits_{family(path)}_test.npz") as f:
                data = {model.inputs[0].name: f[model.inputs[0].name]}
        result = _run_each(model, data)
        label = path.name + (f" ({kernels} kernels)" if kernels else "")
        for key, value in result.items():
            arrays[f"{label}:{key}"] = value
        meta[label] = {"engine": _engine(model) + (f", {kernels} kernels" if kernels else ""), "path": str(path)}
        print(f"{label}: {meta[label]['engine']}", file=sys.stderr)
    import platform

    meta["_"] = {"machine": platform.machine(), "numpy": np.__version__}
    np.savez(out, __meta__=np.array(json.dumps(meta)), **arrays)


def _engine(model) -> str:
    backend = str(getattr(model, "backend", "?"))
    for module in ("onnxruntime", "ai_edge_litert", "tflite_runtime"):
        if module.split("_")[-1] in backend.lower() or module.replace("_", "-") in backend.lower():
            return f"{backend} {_version(module)}"
    if "onnx" in backend.lower():
        return f"{backend} {_version('onnxruntime')}"
    return backend


def _version(module: str) -> str:
    from importlib import metadata

    dist = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime"}.get(module, module)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def compare(a_path: Path, b_path: Path) -> int:
    a, b = np.load(a_path), np.load(b_path)
    ma, mb = json.loads(str(a["__meta__"])), json.loads(str(b["__meta__"]))
    print(f"{ma['_']['machine']} (numpy {ma['_']['numpy']}) vs {mb['_']['machine']} (numpy {mb['_']['numpy']})\n")
    print("| model | engine (x86 / aarch64) | max abs diff | relative | int8 step | in steps | top-1 same | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    bad = 0
    for key in sorted(k for k in a.files if k != "__meta__"):
        fname = key.split(":")[0]
        if key not in b.files:
            print(f"| {key} | | | | | | | missing on {mb['_']['machine']} |")
            bad += 1
            continue
        x, y = a[key].astype(np.float64), b[key].astype(np.float64)
        diff = float(np.max(np.abs(x - y)))
        rel = diff / max(float(np.max(np.abs(x))), 1e-30)
        top1 = int(np.sum(np.argmax(x, -1) == np.argmax(y, -1)))
        n_top1 = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        info = ma[fname]
        engines = info["engine"] if info["engine"] == mb[fname]["engine"] else f"{info['engine']} / {mb[fname]['engine']}"
        if "int8" in fname:
            path = Path(info["path"])
            step = _onnx_step(path) if path.suffix == ".onnx" else _tflite_step(path)
            steps = diff / step if step else float("inf")
            ok = diff == 0 or steps <= 1.0
            cells = f"{step:.3g} | {steps:.3g}" if step else "? | ?"
            verdict = ("equal" if diff == 0 else "float rounding only" if rel <= FP32_RTOL else "within 1 step") \
                if ok else "MISMATCH"
        else:
            ok = rel <= FP32_RTOL
            cells = "- | -"
            verdict = ("equal" if diff == 0 else "within 1e-5") if ok else "MISMATCH"
        if "kernels)" in fname:  # not the default path: shown to tell the kernels apart, never a failure
            verdict += " (informational)"
        elif not ok and _runs_on_builtin_kernels(a, b, key, info["engine"]):
            verdict = "builtin kernels' int8 rounding (gemmlowp on x86, ruy on arm64): explained"
        else:
            bad += not ok
        print(f"| {key} | {engines} | {diff:.3g} | {rel:.3g} | {cells} | {top1}/{n_top1} | {verdict} |")
    print(f"\n{'all agree' if not bad else f'{bad} output(s) disagree'}")
    return 1 if bad else 0


def _runs_on_builtin_kernels(a, b, key: str, engine: str) -> bool:
    """This int8 .tflite output comes from TFLite's builtin int8 kernels on both machines, so a difference
    is theirs (module docstring): its outputs equal the builtin-kernel run's bit for bit on both, or the
    engine is tflite-runtime 2.14, whose XNNPACK takes no int8 ops (its float ops, a ViT's softmax, may
    still go to XNNPACK) and the builtin-kernel run differs across the machines too."""
    fname, out = key.split(":", 1)
    twin = f"{fname} (builtin kernels):{out}"
    if twin not in a.files or twin not in b.files:
        return False
    if np.array_equal(a[key], a[twin]) and np.array_equal(b[key], b[twin]):
        return True
    return engine.startswith("tflite-runtime") and not np.array_equal(a[twin], b[twin])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("int8").add_argument("dir", type=Path)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    d.add_argument("extra", type=Path, nargs="*")
    c = sub.add_parser("compare")
    c.add_argument("x86", type=Path)
    c.add_argument("aarch64", type=Path)
    z = sub.add_parser("zoo")
    z.add_argument("zoo", type=Path)
    z.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "int8":
        make_int8(args.dir)
        return 0
    if args.cmd == "zoo":
        make_zoo(args.zoo, args.dir)
        return 0
    if args.cmd == "dump":
        dump(args.out, args.extra)
        return 0
    return compare(args.x86, args.aarch64)


if __name__ == "__main__":
    sys.exit(main())
