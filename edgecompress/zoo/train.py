"""Train the demo digits CNN: ``python -m edgecompress.zoo.train [OUT.pt]``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecompress.data import Split, load_digits
from edgecompress.zoo import digits_cnn


def train_classifier(
    model: nn.Module,
    train: Split,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(train.x)
    y = torch.from_numpy(train.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    model.train()
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(len(x)), max(1, len(x) // batch_size)):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        scheduler.step()
    return model.eval()


def accuracy(model: nn.Module, split: Split) -> float:
    with torch.no_grad():
        pred = model(torch.from_numpy(split.x)).argmax(1).numpy()
    return float((pred == split.labels).mean())


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else Path(__file__).with_name("digits_cnn.pt")
    data = load_digits()
    model = train_classifier(digits_cnn(), data.train)
    torch.save(model.state_dict(), out)
    print(f"val {accuracy(model, data.val):.4f} test {accuracy(model, data.test):.4f} -> {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
