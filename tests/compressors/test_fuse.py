"""fuse on the shipped digits CNN and on small models with the patterns it handles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgecompress.compressors.fuse import FuseConfig, fuse, merge_linear
from edgecompress.errors import CompressorError
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.model import ModelBundle


def test_digits_fused_outputs_match_and_no_batchnorm_left(digits_bundle, digits_data, run_ctx):
    fused, stats = fuse(digits_bundle, FuseConfig(), run_ctx)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.module.modules())
    assert not any(isinstance(m, nn.Dropout) for m in fused.module.modules())
    assert stats["batchnorms_folded"] == 3 and stats["dropouts_removed"] == 1
    assert stats["method"] == "fx"
    x = torch.from_numpy(digits_data.test.x)
    with torch.no_grad():
        diff = (digits_bundle.module(x) - fused.module(x)).abs().max().item()
    assert diff <= 1e-5, diff
    assert stats["metric_after"] == stats["metric_before"]
    assert any(isinstance(m, nn.BatchNorm2d) for m in digits_bundle.module.modules())


class TwoLinears(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.drop, self.b = nn.Linear(64, 32), nn.Dropout(0.3), nn.Linear(32, 10)
        self.bn = nn.BatchNorm1d(10)

    def forward(self, x):
        return self.bn(self.b(self.drop(self.a(x.flatten(1)))))


def _bundle(module, digits_bundle) -> ModelBundle:
    spec = TensorSpec("image", "float32", ("batch", 1, 8, 8))
    examples = {"image": np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)}
    return ModelBundle(module.eval(), IOSpec([spec], digits_bundle.io.outputs), examples,
                       digits_bundle.task)  # fmt: skip


def test_linear_dropout_linear_bn_becomes_one_linear(digits_bundle, digits_data, run_ctx):
    model = TwoLinears()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    fused, stats = fuse(_bundle(model, digits_bundle), FuseConfig(), run_ctx)
    assert stats["linears_merged"] == 1 and stats["batchnorms_folded"] == 1
    assert [type(m) for m in fused.module.modules()][1:] == [nn.Linear]
    x = torch.from_numpy(digits_data.test.x)
    with torch.no_grad():
        assert torch.allclose(model(x), fused.module(x), atol=1e-5)


def test_merge_linear_is_exact():
    a, b = nn.Linear(5, 7), nn.Linear(7, 3)
    x = torch.randn(11, 5)
    assert torch.allclose(merge_linear(a, b)(x), b(a(x)), atol=1e-6)


class Gate(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


class GatedCNN(nn.Module):
    """BatchNorm outside any nn.Sequential plus untraceable control flow."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.gate = nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), Gate()
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        return self.head(self.gate(self.bn(self.conv(x))).mean((2, 3)))


def test_untraceable_model_names_the_layer(digits_bundle, run_ctx):
    with pytest.raises(CompressorError, match=r"layer gate \(Gate\).*x\.sum\(\) > 0.*\['bn'\]"):
        fuse(_bundle(GatedCNN(), digits_bundle), FuseConfig(), run_ctx)


class SequentialGated(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout())
        self.gate, self.head = Gate(), nn.Linear(4, 10)

    def forward(self, x):
        return self.head(self.gate(self.body(x)).mean((2, 3)))


def test_module_pattern_fallback_when_tracing_fails(digits_bundle, digits_data, run_ctx):
    model = SequentialGated()
    with torch.no_grad():
        model.body[1].running_var.uniform_(0.5, 2)
    fused, stats = fuse(_bundle(model, digits_bundle), FuseConfig(), run_ctx)
    assert stats["method"] == "module-pattern" and "gate (Gate)" in stats["trace_error"]
    assert stats["batchnorms_folded"] == 1 and stats["dropouts_removed"] == 1
    x = torch.from_numpy(digits_data.test.x)
    with torch.no_grad():
        assert torch.allclose(model(x), fused.module(x), atol=1e-5)
