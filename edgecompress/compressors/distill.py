"""Knowledge distillation from the current model (teacher) into a smaller student.

The student is built by a factory (``student: "pkg.module:function"``, with ``student_args``)
or derived from the teacher: ``layers: N`` keeps N evenly spaced encoder layers of a
transformer; ``width: W`` keeps the share W of every channel group (a copy of the teacher
pruned by the same channel groups as ``prune: {method: structured}``, initialised from the
teacher's strongest channels). Classifiers learn temperature-softened KL on logits plus
``alpha`` x cross-entropy; encoders match the teacher's embeddings (MSE and/or cosine) on the
train split's texts. Runs on one process, or under ``torchrun`` with DDP (see distill_train).
"""

from __future__ import annotations

import copy
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from edgecompress.compressors.common import first_output, metric_stats, size_bytes, to_torch
from edgecompress.compressors.distill_train import train_student
from edgecompress.compressors.prune_channels import prune_structure
from edgecompress.compressors.targets import ChannelTargets
from edgecompress.errors import CompressorError
from edgecompress.imports import import_object
from edgecompress.loaders import load_state_dict, resolve_path
from edgecompress.registry import StepConfig, register_compressor

if TYPE_CHECKING:
    from torch import nn


class EmbeddingLoss(StrEnum):
    mse = "mse"
    cosine = "cosine"
    both = "mse+cosine"


class TeacherSource(StrEnum):
    current = "current"  # the model as the previous step left it
    original = "original"  # the model as loaded, before any step of the run


CURRENT_STUDENT = "current"


class DistillConfig(StepConfig):
    """Distil the current model into a smaller student (factory or fewer encoder layers)."""

    student: str | None = Field(
        None,
        description="Student factory 'pkg.module:function', or 'current': the model as the "
        "previous step left it (e.g. pruned), trained from the 'original' teacher.",
    )
    teacher: TeacherSource = Field(
        TeacherSource.current,
        description="Teacher: 'current' (the model so far) or 'original' (as loaded).",
    )
    student_args: dict = Field(default_factory=dict, description="Keyword args of the factory.")
    student_weights: str | None = Field(None, description="Optional initial student state_dict.")
    layers: int | None = Field(
        None, ge=1, description="Transformer teacher: student keeps this many encoder layers."
    )
    width: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="Derive a narrower student from the teacher: keep this share of the "
        "channels of every channel group (rounded to multiples of 8, like prune's round_to).",
    )  # fmt: skip
    epochs: int = Field(10, ge=1, description="Maximum training epochs.")
    lr: float = Field(3e-3, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0.0, description="AdamW weight decay.")
    batch_size: int = Field(64, ge=1, description="Batch size (per process under torchrun).")
    temperature: float = Field(4.0, gt=0.0, description="Softmax temperature of the KL term.")
    alpha: float = Field(0.5, ge=0.0, description="Weight of the task loss (cross-entropy).")
    embedding_loss: EmbeddingLoss = Field(
        EmbeddingLoss.both, description="Encoders: loss on the embeddings."
    )
    patience: int = Field(3, ge=1, description="Early stopping: epochs without val improvement.")
    max_train_samples: int | None = Field(None, ge=1, description="Cap on train samples.")
    max_val_samples: int | None = Field(None, ge=1, description="Cap on val samples.")
    checkpoint_dir: str | None = Field(None, description="Folder for best.pt / last.pt.")
    seed: int = Field(0, description="Seed of the initialisation and shuffling.")

    @model_validator(mode="after")
    def _one_student(self):
        given = [x is not None for x in (self.student, self.layers, self.width)]
        if sum(given) != 1:
            raise ValueError(
                "give exactly one of 'student' (a factory), 'layers' (N) or 'width' (W)"
            )
        if self.student == CURRENT_STUDENT and self.teacher != TeacherSource.original:
            raise ValueError("student 'current' learns from teacher 'original'; set teacher")
        return self


def derive_encoder_student(teacher: nn.Module, layers: int) -> nn.Module:
    """A copy of a HF encoder wrapper keeping ``layers`` evenly spaced encoder layers."""
    from torch import nn

    base = getattr(getattr(teacher, "model", None), "base_model", None)
    encoder_layers = getattr(getattr(base, "encoder", None), "layer", None)
    if encoder_layers is None:
        raise CompressorError(
            f"distill: 'layers' needs a transformers encoder (module.model.encoder.layer); "
            f"{type(teacher).__name__} has none: give a 'student' factory instead"
        )
    total = len(encoder_layers)
    if layers >= total:
        raise CompressorError(f"distill: layers={layers} must be below the teacher's {total}")
    keep = [round((i + 1) * total / layers) - 1 for i in range(layers)]
    student = copy.deepcopy(teacher)
    sbase = student.model.base_model
    sbase.encoder.layer = nn.ModuleList([sbase.encoder.layer[i] for i in keep])
    config = student.model.config
    config.num_hidden_layers = layers
    pruned = dict(getattr(config, "pruned_heads", {}) or {})
    config.pruned_heads = {new: pruned[old] for new, old in enumerate(keep) if old in pruned}
    return student


def derive_narrow_student(bundle, width: float) -> tuple[nn.Module, dict]:
    """A copy of the teacher keeping ``width`` of each channel group's strongest channels."""
    student = copy.deepcopy(bundle.module)
    inputs = to_torch(bundle, bundle.example_inputs)
    pruned = prune_structure(student, inputs, ChannelTargets(amount=1.0 - width))
    return student, {"student": "derived", "width": width, "structure": pruned}


def build_student(bundle, config: DistillConfig) -> tuple[nn.Module, dict]:
    if config.width is not None:
        return derive_narrow_student(bundle, config.width)
    if config.layers is not None:
        return derive_encoder_student(bundle.module, config.layers), {"layers": config.layers}
    if config.student == CURRENT_STUDENT:
        return copy.deepcopy(bundle.module), {"student": "current", "teacher": "original"}

    factory = import_object(config.student, what="distill.student")
    try:
        student = factory(**config.student_args)
    except Exception as exc:
        raise CompressorError(f"distill: student factory {config.student}() failed: {exc}") from exc
    if config.student_weights:
        student.load_state_dict(load_state_dict(resolve_path(config.student_weights)))
    return student, {"student": config.student}


def _check_shapes(bundle, student: nn.Module) -> None:
    import torch

    inputs = to_torch(bundle, bundle.example_inputs)
    with torch.no_grad():
        t, s = first_output(bundle.module(*inputs)), first_output(student.eval()(*inputs))
    if t.shape != s.shape:
        raise CompressorError(
            f"distill: the student's output shape {tuple(s.shape)} differs from the teacher's "
            f"{tuple(t.shape)}"
        )


@register_compressor("distill", DistillConfig)
def distill(bundle, config: DistillConfig, ctx):
    """Distil the model into a smaller student (KL + task loss, or embedding matching)."""
    import torch

    if bundle.module is None:
        raise CompressorError("distill needs a torch teacher model (this bundle is ONNX-only)")
    torch.manual_seed(config.seed)
    student, stats = build_student(bundle, config)
    _check_shapes(bundle, student)
    before = ctx.evaluate_bundle(bundle)
    teacher = bundle.module
    if config.teacher == TeacherSource.original:
        if ctx.original is None or ctx.original.module is None:
            raise CompressorError("distill: teacher 'original' needs a run with an original model")
        teacher = ctx.original.module
    student, info = train_student(student, teacher, bundle, ctx, config)
    new = bundle.replace(module=student, quant_spec=None, float_module=None)
    after = ctx.evaluate_bundle(new)
    stats.update(metric_stats(ctx, before, after), **info)
    stats["retained"] = round(after["value"] / before["value"], 6) if before["value"] else None
    stats.update(size_bytes_before=size_bytes(bundle.module), size_bytes_after=size_bytes(student))
    stats.update(params_before=bundle.param_count(), params_after=new.param_count())
    return new, stats
