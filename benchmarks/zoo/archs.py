"""PyTorch architectures of the model zoo, written here from the papers (no torchvision).

Widths and block layouts follow the published networks; input sizes are kept small (the zoo is
about conversion, parity and relative speed, not ImageNet accuracy). :func:`randomize` gives a
randomly initialised network realistic BatchNorm statistics and affine parameters, so activations
and logits keep a healthy spread through depth and int8 top-1 agreement means something.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: type[nn.Module] | None = nn.ReLU,
            dim: int = 2) -> nn.Sequential:
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dim == 2 else (nn.Conv1d, nn.BatchNorm1d)
    layers: list[nn.Module] = [conv(cin, cout, k, s, k // 2, groups=groups, bias=False), bn(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def divisible(v: float, d: int = 8) -> int:
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def randomize(model: nn.Module, example: torch.Tensor, seed: int = 0) -> nn.Module:
    """Random BatchNorm affine parameters, then running statistics measured on ``example`` in train mode."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(bn.num_features, generator=g) * 0.2)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one batch sets the statistics
        model.train()
        model(example)
    return model.eval()


class SqueezeExcite(nn.Module):
    def __init__(self, ch: int, squeeze: int, gate: type[nn.Module] = nn.Sigmoid, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.reduce, self.act = nn.Conv2d(ch, squeeze, 1), act()
        self.expand, self.gate = nn.Conv2d(squeeze, ch, 1), gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 and EfficientNet's MBConv: expand 1x1, depthwise kxk, optional SE, linear project 1x1."""

    def __init__(self, cin: int, hidden: int, cout: int, k: int, s: int, act: type[nn.Module],
                 se: int = 0, se_gate: type[nn.Module] = nn.Sigmoid, se_act: type[nn.Module] = nn.ReLU):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(cin, hidden, 1, act=act)] if hidden != cin else []
        layers.append(conv_bn(hidden, hidden, k, s, groups=hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, se, se_gate, se_act))
        layers.append(conv_bn(hidden, cout, 1, act=None))
        self.body, self.residual = nn.Sequential(*layers), s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 32, 3, 2, act=nn.ReLU6)]
        cin = 32
        for t, c, n, s in self.CFG:
            for i in range(n):
                layers.append(InvertedResidual(cin, cin * t, c, 3, s if i == 0 else 1, nn.ReLU6))
                cin = c
        layers += [conv_bn(cin, 1280, 1, act=nn.ReLU6), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                   nn.Linear(1280, classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MobileNetV3Small(nn.Module):
    # kernel, expansion, out, SE, hard-swish, stride
    CFG = [(3, 16, 16, True, False, 2), (3, 72, 24, False, False, 2), (3, 88, 24, False, False, 1),
           (5, 96, 40, True, True, 2), (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
           (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1), (5, 288, 96, True, True, 2),
           (5, 576, 96, True, True, 1), (5, 576, 96, True, True, 1)]

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 16, 3, 2, act=nn.Hardswish)]
        cin = 16
        for k, e, c, se, hs, s in self.CFG:
            layers.append(InvertedResidual(cin, e, c, k, s, nn.Hardswish if hs else nn.ReLU,
                                           se=divisible(e / 4) if se else 0, se_gate=nn.Hardsigmoid))
            cin = c
        layers += [conv_bn(cin, 576, 1, act=nn.Hardswish), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(576, 1024), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(1024, classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EfficientNetB0(nn.Module):
    CFG = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
           (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]  # expansion, kernel, stride, out, repeats

    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 32, 3, 2, act=nn.SiLU)]
        cin = 32
        for e, k, s, c, n in self.CFG:
            for i in range(n):
                layers.append(InvertedResidual(cin, cin * e, c, k, s if i == 0 else 1, nn.SiLU,
                                               se=max(1, cin // 4), se_act=nn.SiLU))
                cin = c
        layers += [conv_bn(cin, 1280, 1, act=nn.SiLU), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                   nn.Linear(1280, classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, s: int):
        super().__init__()
        self.a, self.b = conv_bn(cin, cout, 3, s), conv_bn(cout, cout, 3, act=None)
        self.down = conv_bn(cin, cout, 1, s, act=None) if s != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b(self.a(x)) + self.down(x))


class ResNet18(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for c, s in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [BasicBlock(cin, c, s), BasicBlock(c, c, 1)]
            cin = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.e1, self.e3 = nn.Conv2d(squeeze, expand, 1), nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(s)), F.relu(self.e3(s))], 1)


class SqueezeNet11(nn.Module):
    """SqueezeNet 1.1: Fire modules, max pooling with ceil_mode, a 1x1 conv classifier."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
        self.net = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(), Fire(64, 16, 64), Fire(128, 16, 64), pool(),
            Fire(128, 32, 128), Fire(256, 32, 128), pool(), Fire(256, 48, 192), Fire(384, 48, 192),
            Fire(384, 64, 256), Fire(512, 64, 256), nn.Dropout(0.5), nn.Conv2d(512, classes, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, s: int):
        super().__init__()
        half = cout // 2
        self.s = s
        self.branch1 = nn.Sequential(conv_bn(cin, cin, 3, s, groups=cin, act=None), conv_bn(cin, half, 1)) \
            if s == 2 else nn.Identity()
        b2_in = cin if s == 2 else half
        self.branch2 = nn.Sequential(conv_bn(b2_in, half, 1), conv_bn(half, half, 3, s, groups=half, act=None),
                                     conv_bn(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.s == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.branch2(b)], 1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], 1)
        return channel_shuffle(out)


class ShuffleNetV2(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)]
        cin = 24
        for c, n in [(116, 4), (232, 8), (464, 4)]:
            layers += [ShuffleUnit(cin, c, 2)] + [ShuffleUnit(c, c, 1) for _ in range(n - 1)]
            cin = c
        layers += [conv_bn(cin, 1024, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
