"""Train a small MobileNet-style conv net on the digits and write it, with its data, to examples/models/.

    python examples/convnet/make_convnet.py [--out examples/models] [--epochs 40]

Needs PyTorch (CPU build is enough) for training, plus scikit-learn, onnx and onnxruntime. Nothing
else in edgeops needs torch: the written .onnx and .npz files are committed.

Data: scikit-learn's bundled 8x8 handwritten digits, pixels / 16 in 0..1, upsampled to 32x32 with
bilinear interpolation (half-pixel centres, like torch's ``interpolate(align_corners=False)``), one
channel. The split, the test labels and the 100 calibration images are exactly those of
``examples/digits/make_models.py`` (its ``load_splits`` is reused), so ``digits_test_labels.npy``
serves this model too.

The network (NCHW; every conv is followed by a separate BatchNormalization node in the ONNX file):

    stem     Conv 3x3 s2 1->16, BN, HardSwish                               [N, 16, 16, 16]
    block1   Conv1x1 16->32, BN, Relu; DWConv3x3 s1, BN, HardSwish;
             Conv1x1 32->16, BN; Add (residual)                             [N, 16, 16, 16]
    pool     MaxPool 2x2 s2                                                 [N, 16, 8, 8]
    block2   Conv1x1 16->48, BN, Relu; DWConv3x3 s1, BN, HardSwish;
             Conv1x1 48->24, BN                                             [N, 24, 8, 8]
    block3   Conv1x1 24->72, BN, HardSwish; DWConv3x3 s2, BN, HardSwish;
             Conv1x1 72->32, BN                                             [N, 32, 4, 4]
    block4   Conv1x1 32->96, BN, HardSwish; DWConv3x3 s1, BN, HardSwish;
             Conv1x1 96->32, BN; Add (residual)                             [N, 32, 4, 4]
    head     GlobalAveragePool, Flatten, Gemm 32->10, Softmax               [N, 10]

Writes (to --out):
    digits_mobilenet.onnx               input "image" [batch, 1, 32, 32], output "probabilities"
    digits_mobilenet_test.npz           the 360 test images, key "image", float32 [360, 1, 32, 32]
    digits_mobilenet_calib.npz          the 100 calibration images (10 per class, training split)
    digits_mobilenet.profile.json       reference profile of "image" and "probabilities" (training)

The ONNX graph is built node by node with onnx.helper from the trained weights (opset 17, IR
version 8; no torch.onnx exporter), then checked: onnxruntime must agree with torch's eval-mode
output within 1e-4 on the test split. Accuracy goes to stdout, progress to stderr. Training is
deterministic (fixed seeds, one thread, deterministic algorithms): the same machine writes the
same bytes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DIGITS = HERE.parent / "digits"
SEED = 0
SIZE = 32  # 8x8 digits are upsampled 4x
OPSET, IR_VERSION = 17, 8
PARITY_TOLERANCE = 1e-4
BN_EPSILON = 1e-5  # torch's default, written into every BatchNormalization node

# (expand channels, out channels, depthwise stride, expand activation, residual)
BLOCKS = [
    (32, 16, 1, "Relu", True),
    (48, 24, 1, "Relu", False),
    (72, 32, 2, "HardSwish", False),
    (96, 32, 1, "HardSwish", True),
]
STEM_CHANNELS = 16
POOL_AFTER_BLOCK = 0  # MaxPool 2x2 after block1

# module -> (pip package, what it is needed for)
REQUIREMENTS = {
    "torch": ("torch", "training the network (a CPU build is enough)"),
    "sklearn": ("scikit-learn", "the digits data"),
    "onnx": ("onnx", "building the ONNX graph"),
    "onnxruntime": ("onnxruntime", "checking and measuring the ONNX model"),
}


def check_requirements() -> None:
    """Exit with one message naming every missing package (the same check as make_models.py)."""
    _make_models().check_requirements(REQUIREMENTS, "make_convnet.py")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _make_models():
    """examples/digits/make_models.py, for its split, npz writer and profile helpers."""
    if str(DIGITS) not in sys.path:
        sys.path.insert(0, str(DIGITS))
    return importlib.import_module("make_models")


# --- data -------------------------------------------------------------------------------------


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of 1-D bilinear resizing with half-pixel centres (no antialias)."""
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out) + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    frac = src - low
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.arange(n_out), low), 1.0 - frac)
    np.add.at(matrix, (np.arange(n_out), high), frac)
    return matrix


def upsample(pixels: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Flat 8x8 pixels [n, 64] in 0..1 -> float32 images [n, 1, size, size] in 0..1."""
    matrix = bilinear_matrix(8, size)
    images = matrix @ pixels.reshape(-1, 8, 8).astype(np.float64) @ matrix.T
    return np.clip(images, 0.0, 1.0).astype(np.float32)[:, None]


# --- the network (torch) ------------------------------------------------------------------------


def build_network():
    import torch
    from torch import nn

    def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPSILON),
        )

    def activation(name: str) -> nn.Module:
        return nn.Hardswish() if name == "HardSwish" else nn.ReLU()

    class Block(nn.Module):
        def __init__(self, c_in: int, expand: int, c_out: int, stride: int, act: str, residual: bool):
            super().__init__()
            assert not residual or (c_in == c_out and stride == 1)
            self.expand, self.expand_act = conv_bn(c_in, expand, 1), activation(act)
            self.depthwise = conv_bn(expand, expand, 3, stride, groups=expand)
            self.depthwise_act = nn.Hardswish()
            self.project = conv_bn(expand, c_out, 1)
            self.residual = residual

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.expand_act(self.expand(x))
            y = self.depthwise_act(self.depthwise(y))
            y = self.project(y)
            return x + y if self.residual else y

    class MobileNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv_bn(1, STEM_CHANNELS, 3, stride=2)
            self.stem_act = nn.Hardswish()
            blocks, c_in = [], STEM_CHANNELS
            for expand, c_out, stride, act, residual in BLOCKS:
                blocks.append(Block(c_in, expand, c_out, stride, act, residual))
                c_in = c_out
            self.blocks = nn.ModuleList(blocks)
            self.pool = nn.MaxPool2d(2, 2)
            self.fc = nn.Linear(c_in, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Logits [N, 10]; softmax is applied in the ONNX graph (and by the loss here)."""
            x = self.stem_act(self.stem(x))
            for i, block in enumerate(self.blocks):
                x = block(x)
                if i == POOL_AFTER_BLOCK:
                    x = self.pool(x)
            return self.fc(x.mean(dim=(2, 3)))

    return MobileNet()


def train(x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int = 32, lr: float = 3e-3):
    import torch
    from torch.nn import functional as F

    torch.manual_seed(SEED)
    net = build_network()
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * -(-len(x) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    images, labels = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=generator)
        total_loss = correct = 0.0
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            batch = _augment(images[index], generator)
            logits = net(batch)
            loss = F.cross_entropy(logits, labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(index)
            correct += float((logits.argmax(1) == labels[index]).sum())
        if epoch % 5 == 4 or epoch == epochs - 1:
            log(
                f"  epoch {epoch + 1:>3}/{epochs}: loss {total_loss / len(x):.4f}, "
                f"train accuracy {correct / len(x):.4f}"
            )
    net.eval()
    return net


def _augment(batch, generator):
    """Random shifts of up to 2 pixels (of 32), zero-filled, one per image."""
    import torch

    shifts = torch.randint(-2, 3, (len(batch), 2), generator=generator)
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2))
    out = torch.empty_like(batch)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        out[i] = padded[i, :, 2 + dy : 2 + dy + SIZE, 2 + dx : 2 + dx + SIZE]
    return out


def torch_probabilities(net, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()


# --- ONNX ---------------------------------------------------------------------------------------


def to_onnx(net):
    """Build the ONNX graph node by node from the eval-mode network's weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights: dict[str, np.ndarray] = {}
    nodes: list = []

    def array(tensor) -> np.ndarray:
        return tensor.detach().numpy().astype(np.float32).copy()

    def conv_bn(module, name: str, x: str) -> str:
        conv, bn = module[0], module[1]
        weights[f"{name}.weight"] = array(conv.weight)
        k = conv.kernel_size[0]
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.weight"],
                [f"{name}.conv"],
                name=f"{name}.conv",
                kernel_shape=[k, k],
                strides=list(conv.stride),
                pads=[k // 2] * 4,
                group=conv.groups,
            )
        )
        for part, tensor in [
            ("scale", bn.weight),
            ("bias", bn.bias),
            ("mean", bn.running_mean),
            ("var", bn.running_var),
        ]:
            weights[f"{name}.bn.{part}"] = array(tensor)
        nodes.append(
            helper.make_node(
                "BatchNormalization",
                [f"{name}.conv", *(f"{name}.bn.{p}" for p in ("scale", "bias", "mean", "var"))],
                [f"{name}.bn"],
                name=f"{name}.bn",
                epsilon=bn.eps,
            )
        )
        return f"{name}.bn"

    def act(kind: str, x: str, name: str) -> str:
        nodes.append(helper.make_node(kind, [x], [name], name=name))
        return name

    x = act("HardSwish", conv_bn(net.stem, "stem", "image"), "stem.act")
    for i, (block, (_, _, _, expand_act, residual)) in enumerate(zip(net.blocks, BLOCKS)):
        name = f"block{i + 1}"
        y = act(expand_act, conv_bn(block.expand, f"{name}.expand", x), f"{name}.expand.act")
        y = act("HardSwish", conv_bn(block.depthwise, f"{name}.dw", y), f"{name}.dw.act")
        y = conv_bn(block.project, f"{name}.project", y)
        if residual:
            nodes.append(helper.make_node("Add", [x, y], [f"{name}.add"], name=f"{name}.add"))
            y = f"{name}.add"
        x = y
        if i == POOL_AFTER_BLOCK:
            nodes.append(helper.make_node("MaxPool", [x], ["pool"], name="pool", kernel_shape=[2, 2], strides=[2, 2]))
            x = "pool"
    weights["fc.weight"], weights["fc.bias"] = array(net.fc.weight), array(net.fc.bias)
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])
    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])
    initializers = [numpy_helper.from_array(value, name) for name, value in weights.items()]
    graph = helper.make_graph(nodes, "digits_mobilenet", [image], [output], initializer=initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgeops-examples",
        doc_string=(
            "32x32 digit classifier (MobileNet-style: depthwise-separable inverted residual "
            "blocks, BatchNormalization not folded). Input: image [N, 1, 32, 32], the 8x8 "
            "pixels / 16 upsampled bilinearly (half-pixel centres), float32 in 0..1."
        ),
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def op_histogram(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE.parent / "models",
        help="output directory (default: examples/models)",
    )
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default: 40)")
    args = parser.parse_args(argv)
    check_requirements()

    import torch

    torch.set_num_threads(1)  # same bytes on every run: no thread-count-dependent reductions
    torch.use_deterministic_algorithms(True)
    make_models = _make_models()
    args.out.mkdir(parents=True, exist_ok=True)

    data = make_models.load_splits()
    x_train, x_test, x_calib = (upsample(data[k]) for k in ("x_train", "x_test", "x_calib"))
    reference = torch.nn.functional.interpolate(
        torch.from_numpy(data["x_test"].reshape(-1, 1, 8, 8)), size=(SIZE, SIZE), mode="bilinear"
    ).numpy()
    assert np.abs(reference - x_test).max() < 1e-6, "numpy upsampling differs from torch's"
    labels_path = args.out / "digits_test_labels.npy"
    if labels_path.exists():
        committed = np.load(labels_path)
        assert np.array_equal(committed, data["y_test"]), f"{labels_path} does not match the split"
    else:
        np.save(labels_path, data["y_test"])
    log(f"digits at {SIZE}x{SIZE}: {len(x_train)} train, {len(x_test)} test, {len(x_calib)} calibration")

    log(f"training the MobileNet-style network (torch {torch.__version__}, {args.epochs} epochs)")
    started = time.perf_counter()
    net = train(x_train, data["y_train"], args.epochs)
    seconds = time.perf_counter() - started
    log(f"  trained in {seconds:.1f} s")

    model = to_onnx(net)
    onnx_path = args.out / "digits_mobilenet.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    make_models.save_npz(args.out / "digits_mobilenet_test.npz", image=x_test)
    make_models.save_npz(args.out / "digits_mobilenet_calib.npz", image=x_calib)

    onnx_test = make_models.run_onnx(onnx_path, x_test)
    torch_test = torch_probabilities(net, x_test)
    parity = float(np.abs(onnx_test - torch_test).max())
    if parity > PARITY_TOLERANCE:
        sys.exit(f"onnxruntime and torch disagree by {parity:.2e} (> {PARITY_TOLERANCE:.0e})")
    make_models.write_profile(
        args.out / "digits_mobilenet.profile.json",
        "image",
        x_train,
        make_models.run_onnx(onnx_path, x_train),
    )

    parameters = sum(p.numel() for p in net.parameters())
    print(f"test split: {len(data['y_test'])} images")
    print(f"{'mobilenet_onnx_accuracy':<32} {make_models.accuracy(onnx_test, data['y_test']):.4f}")
    print(f"{'mobilenet_torch_accuracy':<32} {make_models.accuracy(torch_test, data['y_test']):.4f}")
    print(f"{'torch_vs_onnx_max_abs_diff':<32} {parity:.2e}")
    print(f"{'training_seconds':<32} {seconds:.1f}")
    print(f"{'onnx_bytes':<32} {onnx_path.stat().st_size}")
    print(f"{'trainable_parameters':<32} {parameters}")
    print("ops: " + ", ".join(f"{op} {n}" for op, n in sorted(op_histogram(model).items())))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
