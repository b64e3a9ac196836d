"""Factories that declare no inputs: the recipe's data tells the input spec."""

from __future__ import annotations

from torch import nn


class Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )

    def forward(self, x):
        return nn.functional.relu(x + self.body(x))


def residual_cnn(channels: int = 3, classes: int = 3, width: int = 8) -> nn.Module:
    """Stem, two residual blocks, global pooling, linear: any image size, no io_spec."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        Residual(width),
        Residual(width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, classes),
    )


def digits_plain() -> nn.Module:
    """The zoo's digits CNN (load the shipped trained weights) without its io_spec."""
    from edgecompress.zoo import digits_cnn

    module = digits_cnn()
    module.io_spec = None
    return module
