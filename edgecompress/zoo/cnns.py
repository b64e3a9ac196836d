"""Small CNNs in the shapes real vision networks take, sized for the 8x8 ``digits`` images.

They are what structured pruning has to follow through a graph: residual adds with projection
shortcuts (``digits_resnet``), inverted residuals with depthwise convolutions, squeeze-excite
gates and hardswish (``digits_mobilenet``), channel concatenation (``digits_concat``), and
grouped convolutions with GroupNorm (``digits_resnext``).
No trained weights ship for them: ``benchmarks/pruning.py`` trains them on digits.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecompress.zoo.specs import DIGITS_IO


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)
    )


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 conv-BN, a 1x1 projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1, self.conv2 = _conv_bn(cin, cout, stride=stride), _conv_bn(cout, cout)
        self.shortcut = _conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class DigitsResNet(nn.Module):
    io_spec = DIGITS_IO

    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv_bn(1, w), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(w, w), BasicBlock(w, w))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * w, num_classes)

    def forward(self, image):
        return self.fc(torch.flatten(self.pool(self.layer2(self.layer1(self.stem(image)))), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce, self.expand = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        gate = self.expand(torch.relu(self.reduce(self.pool(x))))
        return x * nn.functional.hardsigmoid(gate)


class InvertedResidual(nn.Module):
    """MobileNetV3's block: 1x1 expand, depthwise kxk, squeeze-excite, 1x1 project, residual."""

    def __init__(self, cin: int, expand: int, cout: int, stride: int = 1, se: bool = True):
        super().__init__()
        self.expand = nn.Sequential(_conv_bn(cin, expand, 1), nn.Hardswish())
        self.depthwise = nn.Sequential(
            _conv_bn(expand, expand, 3, stride, groups=expand), nn.Hardswish()
        )
        self.se = SqueezeExcite(expand, max(8, expand // 4)) if se else nn.Identity()
        self.project = _conv_bn(expand, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class DigitsMobileNet(nn.Module):
    io_spec = DIGITS_IO

    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv_bn(1, w), nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(w, 4 * w, w),
            InvertedResidual(w, 4 * w, 2 * w, stride=2),
            InvertedResidual(2 * w, 6 * w, 2 * w),
        )
        self.head = nn.Sequential(
            _conv_bn(2 * w, 6 * w, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(6 * w, 4 * w), nn.Hardswish(), nn.Dropout(0.1),
            nn.Linear(4 * w, num_classes),
        )  # fmt: skip

    def forward(self, image):
        return self.classifier(self.head(self.blocks(self.stem(image))))


class InceptionBlock(nn.Module):
    """Three parallel branches (1x1, 3x3, pool->1x1) concatenated on the channel axis."""

    def __init__(self, cin: int, branch: int):
        super().__init__()
        self.b1 = nn.Sequential(_conv_bn(cin, branch, 1), nn.ReLU())
        self.b3 = nn.Sequential(
            _conv_bn(cin, branch), nn.ReLU(), _conv_bn(branch, branch), nn.ReLU()
        )
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), _conv_bn(cin, branch, 1), nn.ReLU())

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.bp(x)], dim=1)


class DigitsConcatNet(nn.Module):
    """Inception-style branches concatenated, a dense (DenseNet-style) concatenation, a 1x1
    transition, then a flatten of a 2x2 map straight into a Linear."""

    io_spec = DIGITS_IO

    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv_bn(1, w), nn.ReLU())
        self.inception = InceptionBlock(w, w)
        self.pool = nn.MaxPool2d(2)
        self.grow = nn.Sequential(_conv_bn(3 * w, 2 * w), nn.ReLU())
        self.transition = nn.Sequential(_conv_bn(5 * w, 2 * w, 1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(2 * w * 4, num_classes)

    def forward(self, image):
        x = self.pool(self.inception(self.stem(image)))
        x = torch.cat([x, self.grow(x)], dim=1)  # dense connection: keep x, add new features
        return self.fc(self.transition(x).flatten(1))


def digits_resnet(width: int = 16) -> DigitsResNet:
    """ResNet-style: basic blocks with identity and projection shortcuts."""
    return DigitsResNet(width=width)


def digits_mobilenet(width: int = 16) -> DigitsMobileNet:
    """MobileNetV3-style: inverted residuals, depthwise convs, squeeze-excite, hardswish."""
    return DigitsMobileNet(width=width)


def digits_concat(width: int = 16) -> DigitsConcatNet:
    """Inception/DenseNet-style: channel concatenations feeding a conv and a flatten->Linear."""
    return DigitsConcatNet(width=width)


def _conv_gn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.GroupNorm(4, cout)
    )


class ResNeXtBlock(nn.Module):
    """1x1 reduce, grouped 3x3 (4 groups, not depthwise), 1x1 expand, GroupNorm, residual."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1, groups: int = 4):
        super().__init__()
        self.reduce, self.expand = _conv_gn(cin, mid), _conv_gn(mid, cout)
        self.grouped = _conv_gn(mid, mid, 3, stride, groups)
        self.shortcut = _conv_gn(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.expand(torch.relu(self.grouped(torch.relu(self.reduce(x)))))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class DigitsResNeXt(nn.Module):
    """ResNeXt-style for 8x8 digits: grouped convolutions and GroupNorm (no BatchNorm)."""

    io_spec = DIGITS_IO

    def __init__(self, width: int = 32, num_classes: int = 10):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_conv_gn(1, w, 3), nn.ReLU())
        self.blocks = nn.Sequential(ResNeXtBlock(w, w, w), ResNeXtBlock(w, 2 * w, 2 * w, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * w, num_classes)

    def forward(self, image):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(image))), 1))


def digits_resnext(width: int = 32) -> DigitsResNeXt:
    """ResNeXt-style: grouped (not depthwise) 3x3 convs and GroupNorm, residual adds."""
    return DigitsResNeXt(width=width)
