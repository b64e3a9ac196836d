"""Short fine-tuning on the task's train split after a compressor changed the model.

classification: cross-entropy on the labels; regression: MSE on the labels; embedding: cosine
distance to the original model's embeddings (no labels needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgecompress.compressors.common import first_output, shuffled_batches, to_torch
from edgecompress.errors import CompressorError
from edgecompress.metrics import higher_is_better, predict, score
from edgecompress.model import ModelBundle, TaskKind
from edgecompress.progress import progress
from edgecompress.runtimes import TorchRunner

if TYPE_CHECKING:
    import torch
    from torch import nn


def task_loss(bundle: ModelBundle, out: torch.Tensor, batch, reference=None) -> torch.Tensor:
    import torch
    from torch import nn

    kind = bundle.task.kind
    if kind == TaskKind.classification:
        return nn.functional.cross_entropy(out, torch.as_tensor(batch.labels, dtype=torch.long))
    if kind == TaskKind.regression:
        target = torch.as_tensor(batch.labels, dtype=out.dtype).reshape(out.shape)
        return nn.functional.mse_loss(out, target)
    return (1 - nn.functional.cosine_similarity(out.flatten(1), reference.flatten(1))).mean()


def finetune(
    module: nn.Module,
    bundle: ModelBundle,
    ctx,
    epochs: int,
    lr: float,
    batch_size: int = 32,
    reference: nn.Module | None = None,
) -> nn.Module:
    """Train ``module`` in place for ``epochs`` on ``ctx.data.train``; returns it in eval mode."""
    import torch

    train = ctx.data.train
    needs_labels = bundle.task.kind != TaskKind.embedding
    if needs_labels and train.labels is None:
        raise CompressorError(f"fine-tuning needs labels; the {ctx.data.name} train split has none")
    if not needs_labels and reference is None:
        raise CompressorError("fine-tuning an embedding model needs the reference model")
    torch.manual_seed(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    steps = epochs * int(np.ceil(len(train) / batch_size))
    # Cosine decay and keeping the best epoch on the val split make short fine-tunes repeatable.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps))
    best = (-np.inf, None)
    with progress("fine-tuning", total=steps) as bar:
        for _ in range(epochs):
            module.train()
            for batch in shuffled_batches(train, batch_size, rng):
                inputs = to_torch(bundle, bundle.feeds(batch))
                ref = None
                if reference is not None and not needs_labels:
                    with torch.no_grad():
                        ref = first_output(reference(*inputs))
                loss = task_loss(bundle, first_output(module(*inputs)), batch, ref)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.advance()
            best = _keep_best(module, bundle, ctx, best, needs_labels)
    if best[1] is not None:
        module.load_state_dict(best[1])
    return module.eval()


def _keep_best(module: nn.Module, bundle: ModelBundle, ctx, best: tuple, needs_labels: bool):
    """(score, state) of the best epoch so far on the val split (labelled tasks only)."""
    if not needs_labels or len(ctx.data.val) == 0:
        return best

    module.eval()
    outputs = predict(TorchRunner(module, bundle.io).run, bundle, ctx.data.val)
    metric = score(bundle.task.kind, outputs, ctx.data.val)
    value = metric["value"] if higher_is_better(metric["metric"]) else -metric["value"]
    if value > best[0]:
        return value, {k: v.detach().clone() for k, v in module.state_dict().items()}
    return best
