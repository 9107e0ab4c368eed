"""PyTorch task models of the zoo beyond classification backbones, written here from the papers.

A YOLO-style anchor-free detector (boxes and per-class scores), a small U-Net (per-pixel
probability), a DB-style text detector (probability and threshold maps), a CRNN text recognizer
(conv stack + bidirectional LSTM + per-step log-probabilities), a ViT (patch embedding + transformer
encoder blocks), a depthwise-separable 1-D conv keyword spotter on MFCC frames, a conv autoencoder,
and the small digits networks that the zoo trains on scikit-learn's digits.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .archs import conv_bn


class YoloStyle(nn.Module):
    """Conv-BN-SiLU backbone, two detection scales (strides 8, 16), decoded to xyxy boxes and sigmoid scores."""

    def __init__(self, classes: int = 80, size: int = 128):
        super().__init__()
        act = nn.SiLU
        self.stem = nn.Sequential(conv_bn(3, 16, 3, 2, act=act), conv_bn(16, 32, 3, 2, act=act),
                                  conv_bn(32, 32, 3, act=act))
        self.p3 = nn.Sequential(conv_bn(32, 64, 3, 2, act=act), conv_bn(64, 64, 3, act=act))
        self.p4 = nn.Sequential(conv_bn(64, 128, 3, 2, act=act), conv_bn(128, 128, 3, act=act))
        self.classes = classes
        self.heads = nn.ModuleList(nn.Sequential(conv_bn(c, c, 3, act=act), nn.Conv2d(c, 4 + classes, 1))
                                   for c in (64, 128))
        grids, strides = [], []
        for stride in (8, 16):
            n = size // stride
            ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
            grids.append(torch.stack([xs, ys], -1).reshape(-1, 2) * stride)
            strides.append(torch.full((n * n, 1), float(stride)))
        self.register_buffer("grid", torch.cat(grids)[None])
        self.register_buffer("stride", torch.cat(strides)[None])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f3 = self.p3(self.stem(x))
        f4 = self.p4(f3)
        outs = [h(f).flatten(2).transpose(1, 2) for h, f in zip(self.heads, (f3, f4))]
        raw = torch.cat(outs, 1)  # [N, anchors, 4 + classes]
        ltrb = F.softplus(raw[..., :4]) * self.stride
        boxes = torch.cat([self.grid - ltrb[..., :2], self.grid + ltrb[..., 2:]], -1)
        return boxes, torch.sigmoid(raw[..., 4:])


class UNet(nn.Module):
    """Four-level U-Net: double convs, max-pool down, transposed-conv up, skip concatenation, sigmoid mask."""

    def __init__(self, cin: int = 3, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        double = lambda a, b: nn.Sequential(conv_bn(a, b), conv_bn(b, b))  # noqa: E731
        self.down = nn.ModuleList()
        c = cin
        for w in widths:
            self.down.append(double(c, w))
            c = w
        self.up, self.merge = nn.ModuleList(), nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w, 2, 2))
            self.merge.append(double(2 * w, w))
            c = w
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1])):
            x = merge(torch.cat([up(x), skip], 1))
        return torch.sigmoid(self.out(x))


class DBText(nn.Module):
    """Differentiable-binarization text detector: light backbone, FPN (nearest upsampling), two map heads."""

    def __init__(self, widths: tuple[int, ...] = (16, 24, 48, 96), inner: int = 64):
        super().__init__()
        self.stages, c = nn.ModuleList(), 3
        for i, w in enumerate(widths):
            s = 4 if i == 0 else 2
            self.stages.append(nn.Sequential(conv_bn(c, w, 3, 2), conv_bn(w, w, 3, 2 if s == 4 else 1))
                               if s == 4 else nn.Sequential(conv_bn(c, w, 3, 2), conv_bn(w, w)))
            c = w
        self.lateral = nn.ModuleList(nn.Conv2d(w, inner, 1) for w in widths)
        self.smooth = nn.ModuleList(nn.Conv2d(inner, inner // 4, 3, padding=1) for _ in widths)
        self.prob, self.thresh = self._head(inner), self._head(inner)

    @staticmethod
    def _head(c: int) -> nn.Sequential:
        return nn.Sequential(conv_bn(c, c // 4), nn.ConvTranspose2d(c // 4, c // 4, 2, 2), nn.BatchNorm2d(c // 4),
                             nn.ReLU(), nn.ConvTranspose2d(c // 4, 1, 2, 2), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        lat = [lateral(f) for lateral, f in zip(self.lateral, feats)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + F.interpolate(lat[i + 1], scale_factor=2.0, mode="nearest")
        maps = [F.interpolate(s(f), scale_factor=float(2 ** i), mode="nearest") if i else s(f)
                for i, (s, f) in enumerate(zip(self.smooth, lat))]
        fused = torch.cat(maps, 1)
        return self.prob(fused), self.thresh(fused)


class CRNN(nn.Module):
    """Text-line recognizer: VGG-style convs to a height of 1, a 2-layer bidirectional LSTM, log-softmax per step."""

    def __init__(self, classes: int = 37, hidden: int = 64):
        super().__init__()
        self.convs = nn.Sequential(
            conv_bn(1, 32), nn.MaxPool2d(2, 2), conv_bn(32, 64), nn.MaxPool2d(2, 2),
            conv_bn(64, 128), conv_bn(128, 128), nn.MaxPool2d((2, 1), (2, 1)),
            conv_bn(128, 128), nn.MaxPool2d((2, 1), (2, 1)), conv_bn(128, 128), nn.MaxPool2d((2, 1), (2, 1)))
        self.rnn = nn.LSTM(128, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.convs(x).squeeze(2).transpose(1, 2)  # [N, T, C]
        y, _ = self.rnn(f)
        return F.log_softmax(self.fc(y), -1)


class Block(nn.Module):
    """Pre-norm transformer encoder block: multi-head self-attention (written out) and a GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp: int = 4):
        super().__init__()
        self.heads = heads
        self.n1, self.qkv, self.proj = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.n2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp * dim), nn.GELU(), nn.Linear(mlp * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, -1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.n2(x))


class ViT(nn.Module):
    def __init__(self, size: int = 64, patch: int = 8, cin: int = 3, dim: int = 192, depth: int = 4,
                 heads: int = 3, classes: int = 1000):
        super().__init__()
        self.embed = nn.Conv2d(cin, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        return self.head(self.norm(self.blocks(t))[:, 0])


class KWS(nn.Module):
    """Keyword spotting on [N, 40 MFCC, 49 frames]: depthwise-separable 1-D convs, mean over time, 12 classes."""

    def __init__(self, mfcc: int = 40, width: int = 64, classes: int = 12):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(mfcc, width, 5, 1, dim=1)]
        for s in (2, 1, 2, 1):
            layers += [conv_bn(width, width, 3, s, groups=width, dim=1), conv_bn(width, width, 1, dim=1)]
        self.body, self.fc = nn.Sequential(*layers), nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).mean(-1))


class AutoEncoder(nn.Module):
    """Conv autoencoder for 1x28x28 images: two strided convs, a 32-d bottleneck, transposed convs back, sigmoid."""

    def __init__(self, latent: int = 32):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                 nn.Flatten(), nn.Linear(32 * 7 * 7, latent))
        self.dec_fc = nn.Linear(latent, 32 * 7 * 7)
        self.dec = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.dec_fc(self.enc(x)).reshape(-1, 32, 7, 7))


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(conv_bn(1, 16), conv_bn(16, 32, 3, 2), conv_bn(32, 32), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DigitsMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), -1)
