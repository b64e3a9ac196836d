"""The distillation training loop: AdamW, early stopping on the val split, best state kept,
optional checkpoints, and PyTorch DDP when launched by ``torchrun`` (WORLD_SIZE > 1): the
process group is initialised (nccl on GPU, gloo on CPU), the student wrapped in
DistributedDataParallel and the train split sharded with DistributedSampler."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgecompress.compressors.common import first_output, subset, to_torch
from edgecompress.model import TaskKind
from edgecompress.progress import log, progress

if TYPE_CHECKING:
    import torch
    from torch import nn


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises torch.distributed under torchrun."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if world > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    return rank, world, device


def distill_loss(kind, student_out, teacher_out, labels, config) -> torch.Tensor:
    from torch import nn

    if kind == TaskKind.embedding:
        mse = nn.functional.mse_loss(student_out, teacher_out)
        cos = (1 - nn.functional.cosine_similarity(student_out, teacher_out)).mean()
        return {"mse": mse, "cosine": cos}.get(config.embedding_loss.value, mse + cos)
    if kind == TaskKind.regression:
        soft = nn.functional.mse_loss(student_out, teacher_out)
        hard = nn.functional.mse_loss(
            student_out, labels.to(student_out).reshape(student_out.shape)
        )
        return soft + config.alpha * hard
    t = config.temperature
    soft = nn.functional.kl_div(
        nn.functional.log_softmax(student_out / t, dim=-1),
        nn.functional.softmax(teacher_out / t, dim=-1),
        reduction="batchmean",
    )
    return soft * t * t + config.alpha * nn.functional.cross_entropy(student_out, labels)


def _outputs(module, bundle, split, device, batch_size=128) -> torch.Tensor:
    import torch

    chunks = []
    with torch.no_grad():
        for batch in split.batches(batch_size):
            inputs = [t.to(device) for t in to_torch(bundle, bundle.feeds(batch))]
            chunks.append(first_output(module(*inputs)).float().cpu())
    return torch.cat(chunks)


def val_score(student, bundle, split, device, teacher_val) -> float:
    """Higher is better: accuracy, mean cosine to the teacher, or -MSE."""
    from torch import nn

    out = _outputs(student.eval(), bundle, split, device)
    kind = bundle.task.kind
    if kind == TaskKind.classification:
        return float((out.argmax(1).numpy() == split.labels).mean())
    if kind == TaskKind.regression:
        return -float(
            ((out.numpy().reshape(len(out), -1) - split.labels.reshape(len(out), -1)) ** 2).mean()
        )
    return float(nn.functional.cosine_similarity(out, teacher_val).mean())


class _Loop:
    def __init__(self, student, teacher, bundle, ctx, config):
        import torch

        self.rank, self.world, self.device = setup_distributed()
        if self.device.type != "cpu":  # never move the input bundle's module
            teacher = copy.deepcopy(teacher)
        self.student, self.teacher = student.to(self.device), teacher.to(self.device).eval()
        self.bundle, self.config = bundle, config
        self.train = ctx.data.train.take(config.max_train_samples)
        self.val = ctx.data.val.take(config.max_val_samples)
        self.model = student
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(student, device_ids=ids, find_unused_parameters=True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        self.samples_seen = 0

    def epoch_batches(self, epoch: int):
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(
            range(len(self.train)), num_replicas=self.world, rank=self.rank,
            shuffle=True, seed=self.config.seed, drop_last=False,
        )  # fmt: skip
        sampler.set_epoch(epoch)
        idx = np.fromiter(iter(sampler), dtype=np.int64)
        for start in range(0, len(idx), self.config.batch_size):
            yield subset(self.train, idx[start : start + self.config.batch_size])

    def step(self, batch) -> float:
        import torch

        inputs = [t.to(self.device) for t in to_torch(self.bundle, self.bundle.feeds(batch))]
        with torch.no_grad():
            teacher_out = first_output(self.teacher(*inputs))
        labels = None if batch.labels is None else torch.as_tensor(batch.labels).to(self.device)
        loss = distill_loss(self.bundle.task.kind, first_output(self.model(*inputs)),
                            teacher_out, labels, self.config)  # fmt: skip
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.samples_seen += len(batch)
        return float(loss.detach())


def _checkpoint(loop: _Loop, state: dict, name: str) -> None:
    import torch

    if loop.config.checkpoint_dir and loop.rank == 0:
        folder = Path(loop.config.checkpoint_dir)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(state, folder / name)


def train_student(student, teacher, bundle, ctx, config) -> tuple[nn.Module, dict]:
    """Distil ``teacher`` into ``student``; returns the best student (on val) and facts."""
    import torch

    torch.manual_seed(config.seed)
    loop = _Loop(student, teacher, bundle, ctx, config)
    teacher_val = _outputs(loop.teacher, bundle, loop.val, loop.device)
    best, best_state, stale, history = -np.inf, None, 0, []
    steps = config.epochs * int(np.ceil(len(loop.train) / loop.world / config.batch_size))
    with progress(f"distilling (rank {loop.rank}/{loop.world})", total=steps) as bar:
        for epoch in range(config.epochs):
            loop.model.train()
            losses = []
            for batch in loop.epoch_batches(epoch):
                losses.append(loop.step(batch))
                bar.advance()
            score = val_score(loop.student, bundle, loop.val, loop.device, teacher_val)
            history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 6),
                            "val": round(score, 6)})  # fmt: skip
            _checkpoint(loop, loop.student.state_dict(), "last.pt")
            if score > best:
                best, stale = score, 0
                best_state = copy.deepcopy(loop.student.state_dict())
                _checkpoint(loop, best_state, "best.pt")
            else:
                stale += 1
                if stale >= config.patience:
                    log.info("distill: early stop after epoch %d (val %.4f)", epoch + 1, score)
                    break
    loop.student.load_state_dict(best_state)
    info = {
        "world_size": loop.world,
        "rank": loop.rank,
        "samples_per_rank": loop.samples_seen,
        "epochs_run": len(history),
        "best_val": round(best, 6),
        "history": history,
    }
    return loop.student.cpu().eval(), info
