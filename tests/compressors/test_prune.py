"""prune on the shipped digits CNN (real test split) and on a tiny BERT."""

from __future__ import annotations

import pydantic
import pytest
import torch
from torch import nn

from edgecompress.compressors.prune import PruneConfig, nm_mask, prune


def test_structured_halves_channels_and_finetunes_back(digits_bundle, run_ctx):
    config = PruneConfig(method="structured", amount=0.5, finetune_epochs=8, lr=3e-3, batch_size=64)
    pruned, stats = prune(digits_bundle, config, run_ctx)
    before, after = digits_bundle.param_count(), pruned.param_count()
    assert after <= 0.6 * before, (before, after)
    assert stats["metric_before"] - stats["metric_after"] <= 0.015, stats
    convs = [m for m in pruned.module.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32]
    assert pruned.module.classifier[-1].out_features == 10  # the classifier keeps its outputs
    assert stats["size_bytes_after"] < 0.3 * stats["size_bytes_before"]
    assert digits_bundle.param_count() == 28218  # the input bundle is untouched


@pytest.mark.parametrize("amount", [0.3, 0.7, 0.9])
def test_global_unstructured_reaches_the_asked_sparsity(digits_bundle, run_ctx, amount):
    pruned, stats = prune(digits_bundle, PruneConfig(amount=amount, scope="global"), run_ctx)
    assert abs(stats["sparsity"] - amount) <= 0.005, stats["sparsity"]
    layers = [m for m in pruned.module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert all(not hasattr(m, "weight_orig") for m in layers)  # pruning made permanent
    per_layer = [float((m.weight == 0).float().mean()) for m in layers]
    assert max(per_layer) - min(per_layer) > 0.05  # global: layers differ


def test_layerwise_unstructured_with_finetuning_keeps_masks(digits_bundle, run_ctx):
    config = PruneConfig(amount=0.5, scope="layer", finetune_epochs=2, lr=3e-3, batch_size=64)
    pruned, stats = prune(digits_bundle, config, run_ctx)
    for m in pruned.module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            assert abs(float((m.weight == 0).float().mean()) - 0.5) < 0.02
    assert stats["metric_after"] > stats["metric_after_prune"]
    assert stats["metric_after"] >= 0.97


def test_n_m_pattern(digits_bundle, run_ctx):
    pruned, stats = prune(digits_bundle, PruneConfig(method="n:m", n=2, m=4), run_ctx)
    assert stats["skipped_layers"] == ["features.0"]  # 9 inputs: not a multiple of 4
    w = pruned.module.classifier[0].weight.detach().reshape(64, -1, 4)
    assert ((w != 0).sum(-1) <= 2).all()
    mask = nm_mask(torch.arange(8.0).reshape(1, 8), 2, 4)
    assert mask.tolist() == [[0, 0, 1, 1, 0, 0, 1, 1]]


def test_wrong_config_types_raise_validation_errors():
    with pytest.raises(pydantic.ValidationError, match="amount"):
        PruneConfig(amount="lots")
    with pytest.raises(pydantic.ValidationError, match="amount"):
        PruneConfig(amount=1.0)
    with pytest.raises(pydantic.ValidationError, match="method"):
        PruneConfig(method="random")
    with pytest.raises(pydantic.ValidationError, match="n .* must be smaller"):
        PruneConfig(method="n:m", n=4, m=4)


def test_bert_head_pruning(bert_bundle, sentences_data, tmp_path):
    from edgecompress.context import RunContext

    ctx = RunContext(data=sentences_data, work_dir=tmp_path, eval_samples=64)
    ctx.set_baseline(bert_bundle)
    pruned, stats = prune(bert_bundle, PruneConfig(method="heads", amount=0.5), ctx)
    model = pruned.module.model
    assert all(layer.attention.self.num_attention_heads == 2 for layer in model.encoder.layer)
    assert all(len(v) == 2 for v in model.config.pruned_heads.values())
    assert pruned.param_count() < bert_bundle.param_count()
    assert bert_bundle.module.model.encoder.layer[0].attention.self.num_attention_heads == 4
    assert 0.5 < stats["metric_after"] <= 1.0  # cosine to the unpruned model's embeddings
