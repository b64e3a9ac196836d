"""Small real models the demo recipes use. ``digits_cnn`` ships trained weights.

The weights in ``digits_cnn.pt`` were trained by ``python -m edgecompress.zoo.train`` on the
train split of the built-in ``digits`` data (seed 0); that command reproduces them.
"""

from __future__ import annotations

from torch import nn

from edgecompress.zoo.cnns import digits_concat, digits_mobilenet, digits_resnet, digits_resnext
from edgecompress.zoo.specs import DIGITS_IO

__all__ = ["DIGITS_IO", "digits_cnn", "digits_cnn_small", "digits_concat", "digits_mobilenet",
           "digits_resnet", "digits_resnext"]  # fmt: skip


class DigitsCNN(nn.Module):
    """Conv-BN-ReLU x3 with pooling, then a two-layer classifier: every compressor has work."""

    io_spec = DIGITS_IO

    def __init__(self, width: int = 16, hidden: int = 64, num_classes: int = 10):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(4 * w, hidden),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, image):
        return self.classifier(self.features(image))


def digits_cnn(width: int = 16, hidden: int = 64) -> DigitsCNN:
    """The demo's teacher: about 30k parameters."""
    return DigitsCNN(width=width, hidden=hidden)


def digits_cnn_small() -> DigitsCNN:
    """A student with under a quarter of the teacher's parameters."""
    return DigitsCNN(width=6, hidden=32)
