"""Build the model zoo: every architecture exported to ONNX with its data, cached outside the repository.

    python -m benchmarks.zoo.build [--small] [--only NAME ...] [--force]

Each model lands in ``$EDGEOPS_ZOO_DIR/NAME/`` (default ``~/.cache/edgeops-zoo``): ``model.onnx``,
``calib.npz`` (calibration samples), ``test.npz`` (parity samples), ``labels.npy`` for the models
trained on scikit-learn's digits, and ``meta.json`` (exporter, task, description, fp32 accuracy,
and a hash of the zoo's source so that a changed builder rebuilds). Nothing is downloaded: the
weights are random (BatchNorm statistics and affine randomised, see :func:`archs.randomize`) or
trained here on the digits that scikit-learn ships.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
TS, DYNAMO, SKL = "torch.onnx (TorchScript)", "torch.onnx (dynamo)", "skl2onnx"
PADDLE, TF2ONNX = "onnx.helper, paddle2onnx habits", "onnx.helper, tf2onnx habits"


@dataclass(frozen=True)
class Entry:
    name: str
    exporter: str
    task: str
    small: bool  # built and converted by the CI tests (tests/zoo); the rest run under the slow marker
    make: Callable[[Path], dict[str, Any]]  # writes model.onnx and data into the folder, returns meta
    description: str


def zoo_dir() -> Path:
    return Path(os.environ.get("EDGEOPS_ZOO_DIR") or Path.home() / ".cache" / "edgeops-zoo")


def source_hash() -> str:
    h = hashlib.sha256()
    for name in ("archs.py", "tasks.py", "handmade.py", "build.py"):
        h.update((HERE / name).read_bytes())
    return h.hexdigest()[:16]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data

def digits() -> dict[str, np.ndarray]:
    """scikit-learn's 8x8 digits scaled to [0, 1], split 1297 train / 500 test (fixed)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    test, train = order[:500], order[500:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def save_data(folder: Path, name: str, calib: np.ndarray, test: np.ndarray, labels: np.ndarray | None = None) -> None:
    np.savez(folder / "calib.npz", **{name: calib.astype(np.float32)})
    np.savez(folder / "test.npz", **{name: test.astype(np.float32)})
    if labels is not None:
        np.save(folder / "labels.npy", labels)


def random_data(folder: Path, name: str, shape: tuple[int, ...], n_calib: int = 16, n_test: int = 8,
                low: float = 0.0, high: float = 1.0, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    calib = rng.uniform(low, high, (n_calib, *shape)).astype(np.float32)
    test = rng.uniform(low, high, (n_test, *shape)).astype(np.float32)
    save_data(folder, name, calib, test)
    return calib


# ---------------------------------------------------------------- torch

def export_torch(module: Any, example: Any, path: Path, *, dynamo: bool, inputs: list[str],
                 outputs: list[str]) -> None:
    """TorchScript exporter at opset 17 (``from_torch``'s default), dynamo at its native opset 18; batch dynamic."""
    import logging

    import torch

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" and the like
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=1024)
            prog = torch.onnx.export(module, (example,), dynamo=True, input_names=inputs, output_names=outputs,
                                     dynamic_shapes=({0: batch},), opset_version=18, verbose=False)
            prog.save(str(path))
        else:
            axes = {n: {0: "batch"} for n in inputs + outputs}
            torch.onnx.export(module, (example,), str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=17, dynamo=False)


def random_torch(factory: Callable[[], Any], shape: tuple[int, ...], *, dynamo: bool, outputs: list[str],
                 batch: int = 8, low: float = 0.0, high: float = 1.0) -> Callable[[Path], dict[str, Any]]:
    """A randomly initialised network, BatchNorm randomised on the calibration batch, exported."""

    def make(folder: Path) -> dict[str, Any]:
        import torch

        from .archs import randomize

        torch.manual_seed(0)
        calib = random_data(folder, "input", shape, low=low, high=high)
        model = randomize(factory(), torch.from_numpy(calib[:batch]))
        export_torch(model, torch.from_numpy(calib[:2]), folder / "model.onnx", dynamo=dynamo, inputs=["input"],
                     outputs=outputs)
        return {}

    return make


def trained_digits(factory: Callable[[], Any], shape: tuple[int, ...], *, dynamo: bool, epochs: int = 20,
                   logits: Callable[[Any], Any] | None = None) -> Callable[[Path], dict[str, Any]]:
    """A network trained on the digits (Adam, full-batch-ish), exported; test accuracy goes in the meta."""

    def make(folder: Path) -> dict[str, Any]:
        import torch

        torch.manual_seed(0)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny batches: one thread is as fast, and far faster on a loaded machine
        d = digits()
        xt = torch.from_numpy(d["x_train"].reshape(-1, *shape))
        yt = torch.from_numpy(d["y_train"])
        model = factory()
        head = logits or (lambda m: m)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(yt)).split(64):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(head(model)(xt[idx]), yt[idx]).backward()
                opt.step()
        model.eval()
        torch.set_num_threads(threads)
        xs = d["x_test"].reshape(-1, *shape)
        with torch.no_grad():
            acc = float((model(torch.from_numpy(xs)).argmax(-1).numpy() == d["y_test"]).mean())
        save_data(folder, "input", d["x_train"][:100].reshape(-1, *shape), xs, d["y_test"])
        export_torch(model, torch.from_numpy(xs[:2]), folder / "model.onnx", dynamo=dynamo, inputs=["input"],
                     outputs=["output"])
        return {"accuracy": acc}

    return make


# ---------------------------------------------------------------- scikit-learn, onnx.helper

def sklearn_digits(factory: Callable[[], Any]) -> Callable[[Path], dict[str, Any]]:
    def make(folder: Path) -> dict[str, Any]:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        d = digits()
        est = factory().fit(d["x_train"], d["y_train"])
        onx = convert_sklearn(est, initial_types=[("input", FloatTensorType([None, 64]))],
                              options={id(est): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
        (folder / "model.onnx").write_bytes(onx.SerializeToString())
        save_data(folder, "input", d["x_train"][:100], d["x_test"], d["y_test"])
        return {"accuracy": float(est.score(d["x_test"], d["y_test"]))}

    return make


def helper_model(factory: Callable[[], Any], name: str, shape: tuple[int, ...],
                 high: float = 1.0) -> Callable[[Path], dict[str, Any]]:
    def make(folder: Path) -> dict[str, Any]:
        import onnx

        model = factory()
        onnx.checker.check_model(model)
        onnx.save(model, str(folder / "model.onnx"))
        random_data(folder, name, shape, high=high)
        return {}

    return make


# ---------------------------------------------------------------- the zoo

def _entries() -> list[Entry]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from . import archs, handmade, tasks

    img = (3, 128, 128)
    return [
        # trained on the digits (accuracy reported)
        Entry("digits_cnn", TS, "digits classification", True,
              trained_digits(tasks.DigitsCNN, (1, 8, 8), dynamo=False), "3 conv-BN-ReLU, global pool, linear"),
        Entry("digits_mlp_torch", DYNAMO, "digits classification", True,
              trained_digits(tasks.DigitsMLP, (64,), dynamo=True, logits=lambda m: m.net),
              "64-128-64-10 MLP with softmax output"),
        Entry("digits_vit", DYNAMO, "digits classification", True,
              trained_digits(lambda: tasks.ViT(8, 2, 1, 32, 2, 2, 10), (1, 8, 8), dynamo=True, epochs=25),
              "ViT: 2x2 patches, 2 pre-norm blocks of 2 heads, dim 32"),
        Entry("sk_logreg", SKL, "digits classification", True,
              sklearn_digits(lambda: LogisticRegression(max_iter=2000)), "LogisticRegression (label + probabilities)"),
        Entry("sk_mlp", SKL, "digits classification", True,
              sklearn_digits(lambda: MLPClassifier((64,), max_iter=400, random_state=0)), "MLPClassifier (64,)"),
        Entry("sk_random_forest", SKL, "digits classification", True,
              sklearn_digits(lambda: RandomForestClassifier(20, max_depth=8, random_state=0)),
              "RandomForestClassifier, 20 trees (ai.onnx.ml TreeEnsembleClassifier)"),
        # random weights, small
        Entry("kws_dscnn1d", TS, "keyword spotting", True,
              random_torch(tasks.KWS, (40, 49), dynamo=False, outputs=["logits"], low=-1.0),
              "1-D depthwise-separable convs on 40 MFCC x 49 frames, 12 keywords"),
        Entry("autoencoder", DYNAMO, "image reconstruction", True,
              random_torch(tasks.AutoEncoder, (1, 28, 28), dynamo=True, outputs=["reconstruction"]),
              "conv encoder, 32-d bottleneck, transposed-conv decoder, sigmoid"),
        Entry("paddle_mobilenet", PADDLE, "classification", True,
              helper_model(handmade.paddle_classifier, "x", (3, 64, 64), high=255.0),
              "MobileNetV1-style, opset 11, -1 batch, Constant weights, BN as Mul+Add, Clip(min,max), "
              "Div by 255, Shape-Gather-Concat flatten, MatMul+Add"),
        Entry("paddle_seg", PADDLE, "segmentation", True,
              helper_model(handmade.paddle_segmenter, "x", (3, 64, 64), high=255.0),
              "stride-8 encoder, opset-11 bilinear Resize to the input's Shape, per-pixel softmax"),
        Entry("tf2onnx_cnn", TF2ONNX, "classification", True,
              helper_model(handmade.tf2onnx_classifier, "input_1:0", (32, 32, 3)),
              "NHWC input, Transpose, explicit Pad + VALID conv, MaxPool, Reshape, MatMul+Add"),
        Entry("unet_small", TS, "segmentation", True,
              random_torch(lambda: tasks.UNet(3, (8, 16, 32, 64)), (3, 64, 64), dynamo=False, outputs=["mask"]),
              "4-level U-Net (8-64 channels), transposed-conv up, per-pixel sigmoid"),
        # random weights, real sizes (slow)
        Entry("mobilenet_v2", TS, "classification", False,
              random_torch(archs.MobileNetV2, img, dynamo=False, outputs=["logits"]), "MobileNetV2 1.0, 1000 classes"),
        Entry("mobilenet_v3_small", DYNAMO, "classification", False,
              random_torch(archs.MobileNetV3Small, img, dynamo=True, outputs=["logits"]),
              "MobileNetV3-Small: hard-swish, SE with hard-sigmoid"),
        Entry("resnet18", TS, "classification", False,
              random_torch(archs.ResNet18, img, dynamo=False, outputs=["logits"]), "ResNet-18, 1000 classes"),
        Entry("efficientnet_b0", DYNAMO, "classification", False,
              random_torch(archs.EfficientNetB0, img, dynamo=True, outputs=["logits"]),
              "EfficientNet-B0 layout: MBConv, SiLU, squeeze-excite"),
        Entry("squeezenet1_1", TS, "classification", False,
              random_torch(archs.SqueezeNet11, img, dynamo=False, outputs=["logits"]),
              "SqueezeNet 1.1: Fire modules, ceil-mode max pooling"),
        Entry("shufflenet_v2", TS, "classification", False,
              random_torch(archs.ShuffleNetV2, img, dynamo=False, outputs=["logits"]),
              "ShuffleNetV2 1.0: channel split (Split), channel shuffle (Reshape-Transpose)"),
        Entry("yolo_style", DYNAMO, "detection", False,
              random_torch(tasks.YoloStyle, img, dynamo=True, outputs=["boxes", "scores"]),
              "anchor-free 2-scale detector, decoded xyxy boxes [N,320,4] and sigmoid scores [N,320,80]"),
        Entry("db_text_det", TS, "text detection", False,
              random_torch(tasks.DBText, img, dynamo=False, outputs=["probability", "threshold"]),
              "DB-style: FPN with nearest upsampling, probability and threshold maps"),
        Entry("crnn_text_rec", TS, "text recognition", False,
              random_torch(tasks.CRNN, (1, 32, 128), dynamo=False, outputs=["log_probs"]),
              "CRNN: conv stack, 2-layer bidirectional LSTM, log-softmax over 37 symbols per step"),
        Entry("vit_tiny", DYNAMO, "classification", False,
              random_torch(lambda: tasks.ViT(64, 8, 3, 192, 4, 3, 1000), (3, 64, 64), dynamo=True,
                           outputs=["logits"]),
              "ViT: 8x8 patches of 64x64, 4 blocks, dim 192, 3 heads"),
    ]


def entries(small_only: bool = False) -> list[Entry]:
    return [e for e in _entries() if e.small or not small_only]


def build(entry: Entry, root: Path | None = None, force: bool = False) -> Path:
    """The folder of ``entry`` under the zoo directory, built unless it is there and current."""
    folder = (root or zoo_dir()) / entry.name
    meta_path = folder / "meta.json"
    stamp = source_hash()
    if not force and meta_path.is_file() and (folder / "model.onnx").is_file():
        if json.loads(meta_path.read_text()).get("source") == stamp:
            return folder
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    extra = entry.make(folder)
    meta = {"name": entry.name, "exporter": entry.exporter, "task": entry.task, "small": entry.small,
            "description": entry.description, "source": stamp, **extra}
    meta_path.write_text(json.dumps(meta, indent=1))
    log(f"zoo: built {entry.name} ({entry.exporter}) in {time.perf_counter() - started:.1f} s")
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="only the models the CI tests use")
    ap.add_argument("--only", nargs="*", default=None, help="these models only")
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = ap.parse_args(argv)
    for e in entries(args.small):
        if args.only is None or e.name in args.only:
            print(build(e, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
