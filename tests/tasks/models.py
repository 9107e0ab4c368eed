"""The task models of these tests: a small YOLO-style detector, a small U-Net-like segmenter, and their photos.

The photos are scikit-image's sample images (shipped inside its wheel, nothing downloaded):
64x64 crops of them with one to three filled rectangles (class 0) and ellipses (class 1)
drawn on, so the fp32 models find real objects on real textures. Both models were trained
with a fixed seed for a few hundred steps on such images and exported to ONNX in
``tests/tasks/data/`` (a few minutes on two cores, so they are committed rather than trained
per test session); ``python -m tests.tasks.models`` trains and writes them again.

Detector: four 3x3 convolutions (the first two of stride 2), a 1x1 head of 4 + 2 channels per cell of the 16x16
grid, decoded in the graph as YOLOv8 heads are (centre = (cell + sigmoid) * stride, size =
exp() * 8 px, class scores after a sigmoid), output ``boxes`` ``[N, 6, 256]`` (ultralytics'
transposed layout). Segmenter: encoder-decoder with skip connections; outputs ``prob``
``[N, 1, 64, 64]`` (foreground probability, like a text detector's map) and ``classes``
``[N, 3, 64, 64]`` (background, rectangle, ellipse; softmax).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.tasks.scenes import CLASSES, SIZE, scenes

DATA = Path(__file__).resolve().parent / "data"
GRID = SIZE // 4


def _block(cin: int, cout: int, stride: int = 1):
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


class Detector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(_block(3, 16, 2), _block(16, 32, 2), _block(32, 32), _block(32, 48))
        self.head = torch.nn.Conv2d(48, 4 + CLASSES, 1)
        stride = SIZE // GRID
        gy, gx = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
        self.register_buffer("grid", torch.stack([gx, gy]).reshape(1, 2, -1).float() * stride)
        self.stride = float(stride)

    def raw(self, x):
        return self.head(self.body(x)).flatten(2)  # [N, 4 + C, cells]

    def forward(self, x):
        t = self.raw(x)
        xy = self.grid + torch.sigmoid(t[:, :2]) * self.stride
        wh = torch.exp(t[:, 2:4].clamp(max=4.0)) * 8.0
        return torch.cat([xy, wh, torch.sigmoid(t[:, 4:])], dim=1)


class Segmenter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.e1, self.e2, self.e3 = _block(3, 16), _block(16, 32, 2), _block(32, 48, 2)
        self.d2 = _block(48 + 32, 32)
        self.d1 = _block(32 + 16, 16)
        self.out = torch.nn.Conv2d(16, 1 + CLASSES, 1)

    def forward(self, x):
        up = torch.nn.functional.interpolate
        a = self.e1(x)
        b = self.e2(a)
        c = self.e3(b)
        d = self.d2(torch.cat([up(c, scale_factor=2.0, mode="nearest"), b], 1))
        e = self.d1(torch.cat([up(d, scale_factor=2.0, mode="nearest"), a], 1))
        classes = torch.softmax(self.out(e), dim=1)
        return 1.0 - classes[:, :1], classes


def _detector_targets(boxes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stride = SIZE // GRID
    n = len(boxes)
    cls_t = np.zeros((n, CLASSES, GRID * GRID), np.float32)
    box_t = np.zeros((n, 4, GRID * GRID), np.float32)
    has = np.zeros((n, GRID * GRID), bool)
    for i, bs in enumerate(boxes):
        for x1, y1, x2, y2, c in bs:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            cell = int(cy // stride) * GRID + int(cx // stride)
            cls_t[i, int(c), cell] = 1
            box_t[i, :, cell] = [cx, cy, x2 - x1, y2 - y1]
            has[i, cell] = True
    return cls_t, box_t, has


def _train_detector(steps: int = 250) -> Detector:
    torch.manual_seed(0)
    model = Detector()
    images, boxes, _ = scenes(512, seed=1)
    cls_t, box_t, has = (torch.from_numpy(a) for a in _detector_targets(boxes))
    x = torch.from_numpy(images)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (32,), generator=gen)
        out = model(x[idx])
        logits = model.raw(x[idx])[:, 4:]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, cls_t[idx], pos_weight=torch.tensor(8.0))
        m = has[idx]
        if m.any():
            pred = out[:, :4].permute(0, 2, 1)[m]
            loss = loss + torch.nn.functional.l1_loss(pred, box_t[idx].permute(0, 2, 1)[m]) / 8.0
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _train_segmenter(steps: int = 150) -> Segmenter:
    torch.manual_seed(0)
    model = Segmenter()
    images, _, masks = scenes(256, seed=2)
    x, y = torch.from_numpy(images), torch.from_numpy(masks)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (16,), generator=gen)
        _, classes = model(x[idx])
        loss = torch.nn.functional.nll_loss(torch.log(classes + 1e-6), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _export(model, path, outputs: list[str]) -> None:
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), str(path), input_names=["image"], output_names=outputs,
                      opset_version=17, dynamo=False)


def main() -> None:
    torch.set_num_threads(2)
    DATA.mkdir(exist_ok=True)
    _export(_train_detector(), DATA / "detector.onnx", ["boxes"])
    _export(_train_segmenter(), DATA / "segmenter.onnx", ["prob", "classes"])


if __name__ == "__main__":
    main()
