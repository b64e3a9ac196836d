"""Structured pruning through real architectures: residual adds, depthwise convolutions with
squeeze-excite, channel concatenation, transformers' ResNet and ViT, a tiny BERT. Each pruned
model runs, keeps its output shape, exports to ONNX that onnxruntime runs like torch, and
loses at least 40 % of its parameters (BERT: of its encoder layers' parameters)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgecompress.compressors.prune import PruneConfig, prune
from edgecompress.compressors.targets import kept_channels
from edgecompress.data import Split
from edgecompress.errors import CompressorError
from edgecompress.exporters.onnx.export import export_module
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.loaders import load_factory
from edgecompress.model import ModelBundle, TaskSpec
from edgecompress.runtimes import OnnxRunner, torch_run
from edgecompress.zoo.specs import DIGITS_IO

HALF = PruneConfig(method="structured", amount=0.5)


class HFLogits(nn.Module):
    """A transformers image classifier as the pipeline sees models: image in, logits out."""

    io_spec = DIGITS_IO

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model(pixel_values=image).logits


def hf_resnet() -> HFLogits:
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=1, embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                          layer_type="basic", num_labels=10)  # fmt: skip
    return HFLogits(ResNetForImageClassification(config))


def hf_vit() -> HFLogits:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=8, patch_size=2, num_channels=1, hidden_size=32,
                       num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                       num_labels=10, attn_implementation="eager")  # fmt: skip
    return HFLogits(ViTForImageClassification(config))


def _onnx_diff(bundle: ModelBundle, feeds: dict, tmp_path) -> float:
    """Max |onnxruntime - torch| over the first output, the ONNX file exported by edgecompress."""
    path = tmp_path / "pruned.onnx"
    export_module(bundle, bundle.module, path, opset=17, exporter="torchscript")
    want = next(iter(torch_run(bundle)(feeds).values()))
    got = next(iter(OnnxRunner(path, threads=1, io=bundle.io).run(feeds).values()))
    assert got.shape == want.shape
    return float(np.abs(got - want).max())


FACTORIES = [
    "edgecompress.zoo:digits_resnet",
    "edgecompress.zoo:digits_mobilenet",
    "edgecompress.zoo:digits_concat",
    "tests.compressors.test_prune_channels:hf_resnet",
    "tests.compressors.test_prune_channels:hf_vit",
]


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.rsplit(":", 1)[1])
def test_half_the_channels_of_real_architectures(factory, run_ctx, digits_data, tmp_path):
    bundle = load_factory(factory, None, TaskSpec())
    pruned, stats = prune(bundle, HALF, run_ctx)
    assert pruned.param_count() <= 0.6 * bundle.param_count(), stats
    images = {"image": digits_data.test.x[:32]}
    before, after = torch_run(bundle)(images), torch_run(pruned)(images)
    assert [v.shape for v in after.values()] == [v.shape for v in before.values()] == [(32, 10)]
    assert _onnx_diff(pruned, images, tmp_path) < 1e-4
    assert bundle.param_count() == load_factory(factory, None, TaskSpec()).param_count()
    if factory.endswith("hf_resnet"):  # widths the config describes (prune_hf_cnn)
        assert stats["hf_config"].startswith("updated (embedding_size=8, hidden_sizes=[8, 16])")


def test_residual_depthwise_and_squeeze_excite_shrink_together(run_ctx):
    pruned, stats = prune(load_factory("edgecompress.zoo:digits_mobilenet", None, TaskSpec()),
                          HALF, run_ctx)  # fmt: skip
    block = pruned.module.blocks[0]
    dw = block.depthwise[0][0]
    assert dw.groups == dw.in_channels == dw.out_channels == 32  # still depthwise, 64 -> 32
    assert block.se.expand.out_channels == block.expand[0][0].out_channels == 32
    assert block.project[0].out_channels == pruned.module.stem[0][0].out_channels == 8  # residual
    assert stats["groups_kept_whole"] == [
        {"layer": "classifier.4", "kept_whole": "its channels are a model output"}
    ]


def test_concatenated_branches_keep_their_offsets(run_ctx):
    pruned, stats = prune(load_factory("edgecompress.zoo:digits_concat", None, TaskSpec()),
                          HALF, run_ctx)  # fmt: skip
    m = pruned.module
    branches = [m.inception.b1[0][0], m.inception.b3[2][0], m.inception.bp[1][0]]
    assert [b.out_channels for b in branches] == [8, 8, 8]
    assert m.grow[0][0].in_channels == 24 and m.grow[0][0].out_channels == 16
    assert m.transition[0][0].in_channels == 24 + 16  # the dense concatenation, both parts
    assert m.fc.in_features == 16 * 4 and m.fc.out_features == 10  # flatten of a 2x2 map


def test_transformers_vit_heads_and_mlp_with_a_reloadable_config(run_ctx, digits_data, tmp_path):
    from transformers import ViTForImageClassification

    pruned, stats = prune(load_factory(f"{__name__}:hf_vit", None, TaskSpec()), HALF, run_ctx)
    vit = pruned.module.model
    assert [(r["heads_after"], r["intermediate_after"]) for r in stats["layers"]] == [(2, 64)] * 2
    assert (vit.config.intermediate_size, vit.config.num_attention_heads) == (64, 2)
    vit.save_pretrained(tmp_path / "vit")
    reloaded = ViTForImageClassification.from_pretrained(tmp_path / "vit").eval()
    images = torch.from_numpy(digits_data.test.x[:8])
    with torch.no_grad():
        assert torch.allclose(reloaded(pixel_values=images).logits, vit(images).logits, atol=1e-5)


@pytest.fixture
def text_ctx(sentences_data, bert_bundle, tmp_path):
    from edgecompress.context import RunContext

    ctx = RunContext(data=sentences_data, work_dir=tmp_path, eval_samples=64)
    ctx.set_baseline(bert_bundle)
    return ctx


def _encoder_params(bundle) -> int:
    return sum(p.numel() for p in bundle.module.model.encoder.parameters())


def test_tiny_bert_heads_and_mlp_channels(bert_bundle, text_ctx, tmp_path):
    from transformers import AutoModel

    pruned, stats = prune(bert_bundle, HALF, text_ctx)
    assert _encoder_params(pruned) <= 0.6 * _encoder_params(bert_bundle)
    assert pruned.param_count() < 0.75 * bert_bundle.param_count()  # embeddings stay whole
    layer = pruned.module.model.encoder.layer[0]
    assert (
        layer.attention.self.num_attention_heads == 2
        and layer.intermediate.dense.out_features == 32
    )
    feeds = pruned.feeds(Split(texts=["A short sentence.", "Another, somewhat longer, one here."]))
    assert next(iter(torch_run(pruned)(feeds).values())).shape == (2, 32)
    assert _onnx_diff(pruned, feeds, tmp_path) < 1e-4
    pruned.module.model.save_pretrained(tmp_path / "bert")
    reloaded = AutoModel.from_pretrained(tmp_path / "bert", attn_implementation="eager").eval()
    ids = {k: torch.from_numpy(v) for k, v in feeds.items()}
    with torch.no_grad():
        want = pruned.module.model(**ids).last_hidden_state
        assert torch.allclose(reloaded(**ids).last_hidden_state, want, atol=1e-5)
    assert 0.3 < stats["metric_after"] <= 1.0  # cosine to the unpruned embeddings


def test_bert_layer_left_whole_says_the_config_cannot_rebuild_it(bert_bundle, text_ctx):
    config = PruneConfig(method="structured", amount=0.5, head_amount=0.0,
                         skip=["model.encoder.layer.0.intermediate"])  # fmt: skip
    pruned, stats = prune(bert_bundle, config, text_ctx)
    rows = stats["layers"]
    assert (rows[0]["intermediate_after"], rows[1]["intermediate_after"]) == (64, 32)
    assert all(r["heads_after"] == 4 for r in rows)
    assert stats["hf_config"].startswith("intermediate widths differ per layer [32, 64]")


@pytest.mark.parametrize(
    ("n", "amount", "round_to", "floor", "kept"),
    [(16, 0.5, 8, 1, 8), (24, 0.5, 8, 1, 16), (64, 0.7, 8, 1, 16), (4, 0.5, 8, 1, 2),
     (16, 0.9, 8, 1, 8), (16, 0.5, 1, 12, 12), (20, 0.0, 8, 1, 20), (1, 0.5, 1, 1, 1)],
)  # fmt: skip
def test_kept_channels(n, amount, round_to, floor, kept):
    assert kept_channels(n, amount, round_to, floor) == kept


def test_skip_floor_and_rounding_on_the_digits_cnn(digits_bundle, run_ctx):
    config = PruneConfig(method="structured", amount=0.5, round_to=1, min_channels=20,
                         skip=["features.0"])  # fmt: skip
    pruned, stats = prune(digits_bundle, config, run_ctx)
    convs = [m for m in pruned.module.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 20, 32]  # skipped, floor, half
    assert pruned.module.classifier[0].out_features == 32
    with pytest.raises(CompressorError, match="skip pattern 'feature.0' matches no layer"):
        prune(digits_bundle, PruneConfig(method="structured", skip=["feature.0"]), run_ctx)


def test_taylor_importance_uses_calibration_gradients(digits_bundle, run_ctx):
    quarter = {"method": "structured", "amount": 0.25}
    taylor, stats = prune(digits_bundle, PruneConfig(**quarter, importance="taylor"), run_ctx)
    magnitude, by_weight = prune(digits_bundle, PruneConfig(**quarter), run_ctx)
    assert taylor.param_count() == magnitude.param_count()
    assert all(p.grad is None for p in taylor.module.parameters())
    # measured on the shipped weights: 0.69 vs 0.31 test accuracy before any fine-tuning
    assert stats["metric_after_prune"] > by_weight["metric_after_prune"] + 0.2


def test_taylor_needs_labels(bert_bundle, text_ctx):
    config = PruneConfig(method="structured", importance="taylor")
    with pytest.raises(CompressorError, match="'taylor' needs a labelled task"):
        prune(bert_bundle, config, text_ctx)


class ChannelShuffle(nn.Module):
    """ShuffleNet's shuffle: a view that splits the channel axis, then a transpose."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.a(x)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.fc(self.b(y).mean((2, 3)))


class ConcatFlatten(nn.Module):
    """Two branches concatenated, then flattened straight into a Linear (spatial 8x8)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(1, 16, 3, padding=1)
        self.fc = nn.Linear(32 * 64, 10)

    def forward(self, x):
        return self.fc(torch.cat([self.a(x), self.b(x)], 1).flatten(1))


class InputResidual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 1, 3, padding=1)
        self.head = nn.Linear(1, 10)

    def forward(self, x):
        y = self.conv2(torch.relu(self.conv1(x))) + x  # a residual add with the model's input
        return self.head(y.mean((2, 3)))


class Gate(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x  # data-dependent control flow (torch.fx cannot trace)


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.gate, self.out = nn.Linear(64, 16), Gate(), nn.Linear(16, 10)

    def forward(self, x):
        return self.out(self.gate(self.fc(x.flatten(1))))


def _bundle(module: nn.Module, digits_bundle) -> ModelBundle:
    spec = TensorSpec("image", "float32", ("batch", 1, 8, 8))
    examples = {"image": np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype("float32")}
    return ModelBundle(module.eval(), IOSpec([spec], digits_bundle.io.outputs), examples,
                       digits_bundle.task)  # fmt: skip


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (ChannelShuffle, r"16 channels of layer 'a' through op\(s\) 'view', 'transpose'.*no "
                         r"longer compute what they did"),
        (ConcatFlatten, r"16 channels of layer 'a' through op\(s\) 'cat', 'view'.*fails"),
    ],
)  # fmt: skip
def test_what_cannot_be_followed_is_named(model, message, digits_bundle, run_ctx):
    with pytest.raises(CompressorError, match=message):
        prune(_bundle(model(), digits_bundle), HALF, run_ctx)


def test_nothing_to_prune_is_an_error(digits_bundle, run_ctx):
    linear = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(CompressorError, match=r"no channel group can be pruned.*1 \(its chan"):
        prune(_bundle(linear, digits_bundle), HALF, run_ctx)


def test_residual_add_with_the_input_keeps_those_channels(digits_bundle, run_ctx):
    pruned, stats = prune(_bundle(InputResidual(), digits_bundle), HALF, run_ctx)
    assert pruned.module.conv1.out_channels == 8 and pruned.module.conv2.out_channels == 1
    assert {"layer": "conv2", "kept_whole": "its channels are tied to a model input"} in stats[
        "groups_kept_whole"
    ]


def test_data_dependent_control_flow_needs_no_tracing(digits_bundle, run_ctx):
    torch.manual_seed(0)  # weights whose gate takes the same branch with half the channels cut
    pruned, _ = prune(_bundle(Untraceable(), digits_bundle), HALF, run_ctx)
    assert pruned.module.fc.out_features == 8 and pruned.module.out.in_features == 8


def test_grouped_convs_and_groupnorm_prune_reload_and_export(run_ctx, digits_data, tmp_path):
    factory = "edgecompress.zoo:digits_resnext"  # groups=4 convs, GroupNorm(4)
    bundle = load_factory(factory, None, TaskSpec())
    pruned, stats = prune(bundle, HALF, run_ctx)
    assert pruned.param_count() <= 0.6 * bundle.param_count(), stats
    block = pruned.module.blocks[1]
    assert (block.grouped[0].groups, block.grouped[0].out_channels) == (4, 32)  # 64 -> 32
    assert block.grouped[1].num_groups == 4 and block.grouped[1].num_channels == 32
    images = {"image": digits_data.test.x[:32]}
    assert next(iter(torch_run(pruned)(images).values())).shape == (32, 10)
    assert _onnx_diff(pruned, images, tmp_path) < 1e-4
    torch.save(pruned.module.state_dict(), tmp_path / "pruned.pt")
    rebuilt, _ = prune(load_factory(factory, None, TaskSpec()), HALF, run_ctx)  # same shapes
    rebuilt.module.load_state_dict(torch.load(tmp_path / "pruned.pt", weights_only=True))
    want, got = torch_run(pruned)(images), torch_run(rebuilt)(images)
    assert np.allclose(next(iter(got.values())), next(iter(want.values())), atol=1e-6)
