"""distill: digits CNN into digits_cnn_small (real data); tiny BERT 6 -> 3 layers, also DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pydantic
import pytest
import torch

from edgecompress.compressors.distill import DistillConfig, derive_encoder_student, distill
from edgecompress.runtimes import torch_run


def test_digits_student_keeps_97_percent(digits_bundle, run_ctx, tmp_path):
    config = DistillConfig(
        student="edgecompress.zoo:digits_cnn_small",
        epochs=24,
        patience=8,
        lr=5e-3,
        checkpoint_dir=str(tmp_path / "ckpt"),
    )
    student, stats = distill(digits_bundle, config, run_ctx)
    assert student.param_count() <= digits_bundle.param_count() / 4
    assert stats["metric_after"] >= 0.97 * stats["metric_before"], stats
    assert stats["retained"] >= 0.97
    assert (tmp_path / "ckpt" / "best.pt").exists() and (tmp_path / "ckpt" / "last.pt").exists()
    assert stats["world_size"] == 1 and stats["best_val"] >= max(h["val"] for h in stats["history"])


def test_width_half_student_derived_from_the_teacher(digits_bundle, run_ctx):
    config = DistillConfig(width=0.5, epochs=16, patience=5)
    student, stats = distill(digits_bundle, config, run_ctx)
    convs = [m for m in student.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32]  # the teacher's channel groups, halved
    assert student.param_count() <= digits_bundle.param_count() / 3
    assert stats["metric_after"] >= 0.97 * stats["metric_before"], stats
    assert stats["student"] == "derived" and stats["structure"]["groups"]


def test_width_student_of_a_residual_network(run_ctx):
    from edgecompress.loaders import load_factory
    from edgecompress.model import TaskSpec

    teacher = load_factory("edgecompress.zoo:digits_mobilenet", None, TaskSpec())
    student, stats = distill(
        teacher,
        DistillConfig(width=0.5, epochs=1, max_train_samples=64, max_val_samples=64),
        run_ctx,
    )
    assert student.param_count() <= teacher.param_count() / 3
    assert student.module.blocks[0].project[0].out_channels == 8  # residual group, 16 -> 8


def test_early_stopping(digits_bundle, run_ctx):
    config = DistillConfig(student="edgecompress.zoo:digits_cnn_small", epochs=40, patience=1,
                           lr=1e-1)  # fmt: skip
    _, stats = distill(digits_bundle, config, run_ctx)
    assert stats["epochs_run"] < 40


def test_encoder_student_from_every_other_layer(bert_bundle, sentences_data, tmp_path):
    from edgecompress.context import RunContext

    student = derive_encoder_student(bert_bundle.module, 3)
    layers = student.model.encoder.layer
    assert len(layers) == 3 and student.model.config.num_hidden_layers == 3
    teacher_layers = bert_bundle.module.model.encoder.layer
    assert torch.equal(layers[0].output.dense.weight, teacher_layers[1].output.dense.weight)
    assert len(teacher_layers) == 6
    ctx = RunContext(data=sentences_data, work_dir=tmp_path, eval_samples=128)
    ctx.set_baseline(bert_bundle)
    config = DistillConfig(layers=3, epochs=1, lr=1e-3, max_train_samples=128, max_val_samples=64)
    new, stats = distill(bert_bundle, config, ctx)
    assert new.param_count() < bert_bundle.param_count()
    assert stats["metric_after"] > 0.9  # mean cosine to the teacher's embeddings


def test_config_needs_exactly_one_student():
    with pytest.raises(pydantic.ValidationError, match="exactly one"):
        DistillConfig()
    with pytest.raises(pydantic.ValidationError, match="exactly one"):
        DistillConfig(student="a.b:c", layers=2)
    with pytest.raises(pydantic.ValidationError, match="epochs"):
        DistillConfig(layers=2, epochs="ten")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes(tiny_bert_dir, tmp_path):
    out = tmp_path / "student"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(_free_port()), "-m", "edgecompress.compressors.distill_ddp",
        "--teacher-hf", str(tiny_bert_dir), "--layers", "3", "--epochs", "1",
        "--max-train-samples", "256", "--max-val-samples", "64", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "USE_TF": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "rank 0/2: distilled on 128 samples" in log, log[-3000:]
    assert "rank 1/2: distilled on 128 samples" in log, log[-3000:]
    stats = json.loads((out / "distill_stats.json").read_text())
    assert stats["world_size"] == 2
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

    student = load_hf(out, TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine"))
    assert len(student.module.model.encoder.layer) == 3
    emb = torch_run(student)(student.feeds(_texts(["A short sentence.", "Another one here."])))
    vec = next(iter(emb.values()))
    assert vec.shape == (2, 32) and abs(float((vec**2).sum(1).mean()) - 1.0) < 1e-4


def _texts(texts):
    from edgecompress.data import Split

    return Split(texts=texts)


def test_pruned_model_distilled_from_the_original_teacher(digits_bundle, run_ctx):
    from edgecompress.compressors.distill import DistillConfig, distill
    from edgecompress.compressors.prune import PruneConfig, prune

    pruned, _ = prune(digits_bundle, PruneConfig(method="structured", amount=0.5), run_ctx)
    config = DistillConfig(student="current", teacher="original", epochs=20, patience=5)
    student, stats = distill(pruned, config, run_ctx)
    assert student.param_count() == pruned.param_count()  # the pruned network, retrained
    assert stats["metric_before"] < 0.5  # pruned without fine-tuning is broken
    assert run_ctx.baseline["value"] - stats["metric_after"] <= 0.015, stats


def test_one_kind_of_student():
    with pytest.raises(pydantic.ValidationError, match="exactly one of 'student'.*'width'"):
        DistillConfig(width=0.5, layers=2)
    with pytest.raises(pydantic.ValidationError, match="width"):
        DistillConfig(width=1.0)


def test_current_student_needs_the_original_teacher():
    import pydantic

    from edgecompress.compressors.distill import DistillConfig

    with pytest.raises(pydantic.ValidationError, match="learns from teacher 'original'"):
        DistillConfig(student="current")
