"""Train the example digit classifiers and write them, with their data, to examples/models/.

    python examples/digits/make_models.py [--out examples/models]

Data: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download), pixels scaled
from 0..16 to 0..1, split 80/20 stratified with a fixed seed.

Writes:
    digits_mlp.onnx           MLP 64 -> 64 (ReLU) -> 10, softmax; input "pixels" [batch, 64]
    digits_mlp.tflite         the same weights as TFLite (written without TensorFlow)
    digits_cnn.onnx           small CNN; input "image" [batch, 1, 8, 8]
    digits_{mlp,cnn}_test.npz   held-out test split, keyed by the model's input name
    digits_test_labels.npy      its labels (int64 class indices)
    digits_{mlp,cnn}_calib.npz  100 training images (10 per class) for quantization
    digits_{mlp,cnn}.profile.json  reference profile of inputs and outputs on the training data

Both ONNX graphs are built node by node with onnx.helper from the trained weights (opset 17,
IR version 8, so older onnxruntime builds on devices can read them). The MLP is scikit-learn's
MLPClassifier; the CNN is trained with numpy (numpy_cnn.py). Accuracies are measured by running
the written files (onnxruntime, LiteRT) on the test split and go to stdout; progress to stderr.
Runs are deterministic: the same machine writes the same bytes.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
OPSET, IR_VERSION = 17, 8
CALIB_PER_CLASS = 10

# module -> (pip package, what it is needed for)
REQUIREMENTS = {
    "sklearn": ("scikit-learn", "the digits data and the MLP trainer"),
    "onnx": ("onnx", "building the ONNX graphs"),
    "onnxruntime": ("onnxruntime", "measuring the ONNX models"),
    "ai_edge_litert": ("ai-edge-litert", "writing and checking the TFLite model"),
    "flatbuffers": ("flatbuffers", "writing the TFLite model"),
}


def check_requirements(requirements: dict[str, tuple[str, str]] = REQUIREMENTS, script: str = "make_models.py") -> None:
    """Exit with one message naming every missing package (the CNN trainer needs only numpy)."""
    missing = []
    for module, (package, purpose) in requirements.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append((package, purpose))
    if missing:
        lines = [f"  {package:<16} for {purpose}" for package, purpose in missing]
        install = "pip install " + " ".join(package for package, _ in missing)
        sys.exit(
            f"{script} needs packages that are not installed:\n"
            + "\n".join(lines)
            + f"\ninstall them with: {install}"
        )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- data -------------------------------------------------------------------------------------


def load_splits() -> dict[str, np.ndarray]:
    """Pixels in 0..1 (float32 [n, 64]) and int64 labels for train, test and calibration."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        pixels, labels, test_size=0.2, stratify=labels, random_state=SEED
    )
    rng = np.random.default_rng(SEED)
    calib = np.concatenate(
        [
            rng.choice(np.flatnonzero(y_train == c), CALIB_PER_CLASS, replace=False)
            for c in range(10)
        ]
    )
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "x_calib": x_train[np.sort(calib)],
    }


def as_images(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(-1, 1, 8, 8)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so reruns write the same bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue())


# --- models -----------------------------------------------------------------------------------


def train_mlp(x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two dense layers as [(weight [out, in], bias)], float32."""
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=400, random_state=SEED)
    clf.fit(x, y)
    log(f"  mlp: {clf.n_iter_} iterations, final loss {clf.loss_:.4f}")
    return [
        (w.T.astype(np.float32), b.astype(np.float32))
        for w, b in zip(clf.coefs_, clf.intercepts_, strict=True)
    ]


def _onnx_model(nodes: list, inputs: list, weights: dict[str, np.ndarray], doc: str):
    """Wrap nodes into a checked ModelProto whose output is probabilities [batch, 10]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])
    initializers = [numpy_helper.from_array(array, name) for name, array in weights.items()]
    graph = helper.make_graph(nodes, "digits", inputs, [output], initializer=initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgeops-examples",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def mlp_onnx(layers: list[tuple[np.ndarray, np.ndarray]]):
    from onnx import TensorProto, helper

    (w1, b1), (w2, b2) = layers
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])
    nodes = [
        helper.make_node("Gemm", ["pixels", "fc1.weight", "fc1.bias"], ["fc1"], transB=1),
        helper.make_node("Relu", ["fc1"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "fc2.weight", "fc2.bias"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    weights = {"fc1.weight": w1, "fc1.bias": b1, "fc2.weight": w2, "fc2.bias": b2}
    doc = "8x8 digit classifier (MLP). Input: pixels / 16, row-major, float32 in 0..1."
    return _onnx_model(nodes, [pixels], weights, doc)


def cnn_onnx(params: dict[str, np.ndarray]):
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 8])
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["conv1"], **conv),
        helper.make_node("Relu", ["conv1"], ["relu1"]),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1", "conv2.weight", "conv2.bias"], ["conv2"], **conv),
        helper.make_node("Relu", ["conv2"], ["relu2"]),
        helper.make_node("Flatten", ["relu2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    doc = "8x8 digit classifier (CNN). Input: image [N, 1, 8, 8], pixels / 16, float32 in 0..1."
    return _onnx_model(nodes, [image], params, doc)


# --- measuring --------------------------------------------------------------------------------


def run_onnx(path: Path, inputs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def run_tflite(path: Path, inputs: np.ndarray) -> np.ndarray:
    """Run the whole batch at once through the serving_default signature after a resize."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(inputs.shape))
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner("serving_default")
    return runner(pixels=inputs)["probabilities"]


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float((probabilities.argmax(axis=1) == labels).mean())


def tensor_profile(values: np.ndarray) -> dict:
    """Scalar statistics and a 10-bin histogram over every element; shape with a free batch."""
    flat = values.astype(np.float64).ravel()
    low, high = float(flat.min()), float(flat.max())
    counts, edges = np.histogram(flat, bins=10, range=(low, high))
    return {
        "min": low,
        "max": high,
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "shape": [None, *values.shape[1:]],
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


def write_profile(path: Path, input_name: str, inputs: np.ndarray, outputs: np.ndarray) -> None:
    profile = {
        "version": 1,
        "inputs": {input_name: tensor_profile(inputs)},
        "outputs": {"probabilities": tensor_profile(outputs)},
    }
    path.write_text(json.dumps(profile, indent=2) + "\n")


# --- main -------------------------------------------------------------------------------------


def write_data(out: Path, data: dict[str, np.ndarray]) -> None:
    save_npz(out / "digits_mlp_test.npz", pixels=data["x_test"])
    save_npz(out / "digits_cnn_test.npz", image=as_images(data["x_test"]))
    np.save(out / "digits_test_labels.npy", data["y_test"])
    save_npz(out / "digits_mlp_calib.npz", pixels=data["x_calib"])
    save_npz(out / "digits_cnn_calib.npz", image=as_images(data["x_calib"]))


def make_mlp(out: Path, data: dict[str, np.ndarray]) -> dict[str, float]:
    import tflite_mlp

    log("training the MLP (scikit-learn)")
    layers = train_mlp(data["x_train"], data["y_train"])
    onnx_path, tflite_path = out / "digits_mlp.onnx", out / "digits_mlp.tflite"
    onnx_path.write_bytes(mlp_onnx(layers).SerializeToString())
    description = "edgeops example: 8x8 digits MLP (pixels / 16 -> class probabilities)"
    tflite_path.write_bytes(tflite_mlp.mlp_to_tflite(layers, description=description))

    onnx_test = run_onnx(onnx_path, data["x_test"])
    tflite_test = run_tflite(tflite_path, data["x_test"])
    write_profile(
        out / "digits_mlp.profile.json",
        "pixels",
        data["x_train"],
        run_onnx(onnx_path, data["x_train"]),
    )
    return {
        "mlp_onnx_accuracy": accuracy(onnx_test, data["y_test"]),
        "mlp_tflite_accuracy": accuracy(tflite_test, data["y_test"]),
        "tflite_vs_onnx_max_abs_diff": float(np.abs(tflite_test - onnx_test).max()),
    }


def make_cnn(out: Path, data: dict[str, np.ndarray]) -> dict[str, float]:
    import numpy_cnn

    log("training the CNN (numpy)")
    train_images = as_images(data["x_train"])
    params = numpy_cnn.train(train_images, data["y_train"], seed=SEED)
    onnx_path = out / "digits_cnn.onnx"
    onnx_path.write_bytes(cnn_onnx(params).SerializeToString())

    onnx_test = run_onnx(onnx_path, as_images(data["x_test"]))
    numpy_test, _ = numpy_cnn.forward(params, as_images(data["x_test"]))
    write_profile(
        out / "digits_cnn.profile.json", "image", train_images, run_onnx(onnx_path, train_images)
    )
    return {
        "cnn_onnx_accuracy": accuracy(onnx_test, data["y_test"]),
        "cnn_numpy_vs_onnx_max_abs_diff": float(np.abs(numpy_test - onnx_test).max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE.parent / "models",
        help="output directory (default: examples/models)",
    )
    args = parser.parse_args(argv)
    check_requirements()
    sys.path.insert(0, str(HERE))  # numpy_cnn.py and tflite_mlp.py sit next to this script
    args.out.mkdir(parents=True, exist_ok=True)

    data = load_splits()
    log(
        f"digits: {len(data['x_train'])} train, {len(data['x_test'])} test, "
        f"{len(data['x_calib'])} calibration"
    )
    write_data(args.out, data)
    results = {**make_mlp(args.out, data), **make_cnn(args.out, data)}

    print(f"test split: {len(data['y_test'])} images")
    for name, value in results.items():
        print(f"{name:<32} {value:.4f}" if "accuracy" in name else f"{name:<32} {value:.2e}")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
