"""Structured pruning aimed at a share of the parameters, MACs or onnxruntime latency (the
channel share searched by bisection), round_to 'auto', and recovery by distillation."""

from __future__ import annotations

import pydantic
import pytest
from torch import nn

from edgecompress.compressors import prune_targets
from edgecompress.compressors.prune import PruneConfig, prune
from edgecompress.compressors.prune_targets import PruneTarget, count_macs_params
from edgecompress.compressors.targets import kept_channels
from edgecompress.errors import CompressorError
from edgecompress.loaders import load_factory
from edgecompress.model import TaskSpec


def _convs(bundle) -> list[int]:
    return [m.out_channels for m in bundle.module.modules() if isinstance(m, nn.Conv2d)]


def test_target_config_round_trips_and_is_validated():
    config = PruneConfig(method="structured", target={"macs": 0.4}, round_to="auto")
    assert PruneConfig.from_json(config.to_json()) == config
    assert config.target.metric == "macs" and config.target.share == 0.4
    with pytest.raises(pydantic.ValidationError, match="exactly one of params, macs or latency"):
        PruneTarget(params=0.5, macs=0.5)
    with pytest.raises(pydantic.ValidationError, match="target needs method 'structured'"):
        PruneConfig(target={"params": 0.5})
    with pytest.raises(pydantic.ValidationError, match="less than 1"):
        PruneConfig(method="structured", target={"params": 1.0})
    with pytest.raises(pydantic.ValidationError, match="round_to"):
        PruneConfig(method="structured", round_to="fast")


def test_params_target_picks_the_smallest_amount_that_reaches_it(digits_bundle, run_ctx):
    config = PruneConfig(method="structured", target={"params": 0.5})
    pruned, stats = prune(digits_bundle, config, run_ctx)
    share = pruned.param_count() / digits_bundle.param_count()
    assert stats["params_share"] == pytest.approx(share, abs=1e-4) and share <= 0.5
    assert stats["amount"] == pytest.approx(stats["amount_chosen"], abs=1e-4)
    assert 0.2 < stats["amount"] < 0.5
    less = PruneConfig(method="structured", amount=stats["amount"] - 0.002)
    smaller, _ = prune(digits_bundle, less, run_ctx)
    assert smaller.param_count() / digits_bundle.param_count() > 0.5  # just less: misses it
    assert stats["target"] == {"params": 0.5} and len(stats["search"]) == 11


def test_macs_target_keeps_the_floor_and_the_rounding(run_ctx):
    bundle = load_factory("edgecompress.zoo:digits_resnet", None, TaskSpec())
    config = PruneConfig(method="structured", target={"macs": 0.45}, round_to=4, min_channels=12)
    pruned, stats = prune(bundle, config, run_ctx)
    assert stats["macs_share"] <= 0.45
    assert all(c >= 12 and c % 4 == 0 for c in _convs(pruned)), _convs(pruned)
    assert 16 in _convs(pruned)  # the 32-wide groups go to 16 (12 rounded to a multiple of 4)
    with pytest.raises(CompressorError, match=r"target 0.3 cannot be reached: .* keeps 0\.381"):
        prune(bundle, config.model_copy(update={"target": PruneTarget(macs=0.3)}), run_ctx)


@pytest.mark.parametrize(("flags", "block"), [({"avx2", "avx512f"}, 16), ({"avx2"}, 8)])
def test_round_to_auto_is_onnxruntimes_nchwc_block(flags, block, monkeypatch, run_ctx):
    monkeypatch.setattr(prune_targets, "cpu_model_and_flags", lambda: ("cpu", flags))
    bundle = load_factory("edgecompress.zoo:digits_concat", None, TaskSpec())
    pruned, stats = prune(bundle, PruneConfig(method="structured", round_to="auto"), run_ctx)
    assert stats["round_to"] == block
    assert all(c % block == 0 for c in _convs(pruned)), _convs(pruned)
    assert pruned.module.stem[0][0].out_channels == block  # 16 channels: halved only at 8


def test_latency_target_measures_exported_copies(digits_bundle, run_ctx):
    config = PruneConfig(method="structured", target={"latency": 0.999})
    pruned, stats = prune(digits_bundle, config, run_ctx)
    trials = stats["search"]
    assert len(trials) == 1 + prune_targets.LATENCY_STEPS
    assert stats["latency_share"] <= 0.999 and 0 < stats["amount"] <= prune_targets.MAX_AMOUNT
    assert {"params_share", "macs_share"} <= stats.keys()


def test_distillation_recovers_the_pruned_cnn(digits_bundle, run_ctx):
    config = PruneConfig(method="structured", amount=0.5, finetune_epochs=8, lr=3e-3,
                         batch_size=64, recovery="distill")  # fmt: skip
    pruned, stats = prune(digits_bundle, config, run_ctx)
    assert stats["recovery"] == "distill from the unpruned model"
    assert stats["metric_after_prune"] < 0.5  # half the channels gone: near chance
    assert stats["metric_before"] - stats["metric_after"] <= 0.015, stats
    assert digits_bundle.module.training is False and pruned.param_count() < 0.3 * 28218


def test_the_counter_and_the_rounding_step_the_search_walks(digits_bundle):
    import torch

    image = torch.from_numpy(digits_bundle.example_inputs["image"][:1])
    macs, params = count_macs_params(digits_bundle.module, [image])
    assert params == digits_bundle.param_count() == 28218 and macs == 619274
    assert kept_channels(16, 0.2505, 8) == 8 and kept_channels(16, 0.25, 8) == 16
