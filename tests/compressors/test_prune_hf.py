"""Structured pruning of whole Hugging Face models at amount 0.5: BERT with a real 30,522-token
vocabulary, DistilBERT, ViT, GPT-2, a Llama with grouped-query attention (hidden width, heads,
MLP), a bottleneck ResNet and a ConvNeXt (config widths). Each pruned model loses >= 40 % of its
parameters, keeps its output shapes, reloads with ``from_pretrained`` to identical outputs, and
exports to ONNX that onnxruntime runs like torch."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgecompress.compressors.common import to_torch
from edgecompress.compressors.prune_channels import prune_structure
from edgecompress.compressors.prune_hf import find_hf_model, plan_widths, prunes_hidden, rebuild
from edgecompress.compressors.prune_hf_cnn import prunes_cnn_widths
from edgecompress.compressors.prune_hf_layouts import layout_of
from edgecompress.compressors.targets import ChannelTargets
from edgecompress.errors import CompressorError
from edgecompress.exporters.onnx.export import export_module
from edgecompress.loaders import load_hf
from edgecompress.model import ModelBundle, TaskSpec
from edgecompress.runtimes import OnnxRunner, torch_run
from tests.conftest import write_wordpiece
from tests.hf.lm_models import lm_dirs

HALF = ChannelTargets(amount=0.5)
PROCESSOR = {"image_processor_type": "ViTImageProcessor", "do_resize": True,
             "size": {"height": 32, "width": 32}, "do_rescale": True, "rescale_factor": 1 / 255,
             "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}  # fmt: skip


def _save(model, folder: Path, image: bool = False) -> Path:
    model.save_pretrained(str(folder))
    if image:
        (folder / "preprocessor_config.json").write_text(json.dumps(PROCESSOR))
    return folder


def _bert(folder: Path) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    write_wordpiece(folder)  # ids < 605: the rows of the real-size vocabulary still count
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, num_labels=2)  # fmt: skip
    return _save(BertForSequenceClassification(config), folder)


def _distilbert(folder: Path) -> Path:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    write_wordpiece(folder)
    config = DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=64)
    return _save(DistilBertForSequenceClassification(config), folder)


def _vit(folder: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=64, num_labels=3)  # fmt: skip
    return _save(ViTForImageClassification(config), folder, image=True)


def _resnet(folder: Path) -> Path:
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=16, hidden_sizes=[32, 64], depths=[1, 1],
                          layer_type="bottleneck", num_labels=3)  # fmt: skip
    return _save(ResNetForImageClassification(config), folder, image=True)


def _convnext(folder: Path) -> Path:
    from transformers import ConvNextConfig, ConvNextForImageClassification

    config = ConvNextConfig(hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, num_labels=3)
    return _save(ConvNextForImageClassification(config), folder, image=True)


BUILDERS = {"bert": _bert, "distilbert": _distilbert, "vit": _vit, "resnet": _resnet,
            "convnext": _convnext}  # fmt: skip


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("prune-hf")
    built = {name: build(root / name) for name, build in BUILDERS.items()}
    return {**built, **lm_dirs(tmp_path_factory)}


def _pruned(bundle: ModelBundle, targets: ChannelTargets = HALF) -> tuple[ModelBundle, dict]:
    module = bundle.clone_module()
    stats = prune_structure(module, to_torch(bundle, bundle.example_inputs), targets)
    return bundle.replace(module=module.eval()), stats


def _max_diff(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def _reload_diff(pruned: ModelBundle, folder: Path) -> float:
    """Max |outputs| difference after save_pretrained -> from_pretrained."""
    hf = find_hf_model(pruned.module)
    hf.save_pretrained(str(folder))
    wrapper = copy.deepcopy(pruned.module)
    wrapper.model = type(hf).from_pretrained(str(folder), attn_implementation="eager").eval()
    feeds = pruned.example_inputs
    return _max_diff(torch_run(pruned.replace(module=wrapper))(feeds), torch_run(pruned)(feeds))


def _onnx_diff(pruned: ModelBundle, path: Path) -> float:
    export_module(pruned, pruned.module, path, opset=17, exporter="torchscript")
    feeds = pruned.example_inputs
    got = OnnxRunner(path, threads=1, io=pruned.io).run(feeds)
    want = torch_run(pruned)(feeds)
    name = pruned.io.output_names[0]
    assert got[name].shape == want[name].shape
    return float(np.abs(got[name] - want[name]).max())


WIDTHS = {  # family: (config fields after pruning, at amount 0.5)
    "bert": {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32},
    "distilbert": {"dim": 16, "n_heads": 2, "hidden_dim": 32},
    "vit": {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32},
    "gpt2": {"n_embd": 16, "n_head": 2, "n_inner": 64},
    "llama": {"hidden_size": 24, "num_attention_heads": 2, "num_key_value_heads": 1,
              "head_dim": 12, "intermediate_size": 48},
    "resnet": {"embedding_size": 8, "hidden_sizes": [16, 32]},
    "convnext": {"hidden_sizes": [8, 16]},
}  # fmt: skip


@pytest.mark.parametrize("family", list(WIDTHS))
def test_half_the_widths_reloads_exports_and_loses_40_percent(family, folders, tmp_path):
    bundle = load_hf(folders[family], TaskSpec())
    pruned, stats = _pruned(bundle)
    assert pruned.param_count() <= 0.6 * bundle.param_count(), stats
    config = find_hf_model(pruned.module).config
    assert {k: getattr(config, k) for k in WIDTHS[family]} == WIDTHS[family]
    assert stats["hf_config"].startswith("updated (")
    feeds = bundle.example_inputs
    before, after = torch_run(bundle)(feeds), torch_run(pruned)(feeds)
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert _reload_diff(pruned, tmp_path / "pruned") < 1e-5
    assert _onnx_diff(pruned, tmp_path / "pruned.onnx") < 1e-4
    assert bundle.param_count() == load_hf(folders[family], TaskSpec()).param_count()


def test_bert_with_a_real_vocabulary_sheds_half_its_parameters(folders):
    """The 30,522 x hidden word embeddings are most of a small BERT: they shrink with the hidden
    width (heads and MLP alone removed 31 %)."""
    bundle = load_hf(folders["bert"], TaskSpec())
    pruned, stats = _pruned(bundle)
    assert pruned.param_count() < 0.51 * bundle.param_count()
    assert (stats["hidden"], stats["heads"], stats["head_dim"]) == ([32, 16], [4, 2], [8, 8])
    assert "query_scale_folded" not in stats  # heads halve with the width: head_dim stays 8


def test_query_scale_fold_keeps_the_cut_original(folders):
    """Every head kept while the width halves: head_dim 8 -> 4 and the attention scale would go
    from 1/sqrt(8) to 1/sqrt(4). The queries are multiplied by sqrt(4/8) instead, so the pruned
    ViT equals the original with those channels cut and its attention scale kept."""
    vit = load_hf(folders["vit"], TaskSpec()).module.model
    with torch.no_grad():  # random init attends almost uniformly: sharpen it so scales matter
        for layer in vit.vit.encoder.layer:
            layer.attention.attention.query.weight.mul_(30)
    layout, keep_heads = layout_of(vit.config), ChannelTargets(amount=0.5, head_amount=0.0)
    plan = plan_widths(vit, layout, keep_heads)
    assert (plan.heads, plan.head_dim, round(plan.scale, 6)) == ((4, 4), (8, 4), 0.707107)
    folded, reference, unfolded = copy.deepcopy(vit), copy.deepcopy(vit), copy.deepcopy(vit)
    rebuild(folded, layout, plan)
    rebuild(reference, layout, plan, fold=False)
    rebuild(unfolded, layout, plan, fold=False)
    for layer in reference.vit.encoder.layer:
        layer.attention.attention.scaling = 8**-0.5  # the original's scale, on the cut channels
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        got = folded(images, output_attentions=True)
        want = reference(images, output_attentions=True)
        assert torch.allclose(got.logits, want.logits, atol=1e-6)
        assert torch.allclose(got.attentions[1], want.attentions[1], atol=1e-6)
        off = unfolded(images, output_attentions=True).attentions[1] - want.attentions[1]
        assert off.abs().max() > 0.01  # without the fold the attention sharpens by sqrt(2)


def test_gqa_keeps_whole_kv_groups(folders):
    lm = load_hf(folders["llama"], TaskSpec()).module
    layout = layout_of(lm.model.config)
    plan = plan_widths(lm.model, layout, HALF)
    q, kv = plan.keep[("q", 0)], plan.keep[("kv", 0)]
    group = int(kv[0]) // 12  # one KV head of 12 channels, read by query heads 2g and 2g + 1
    assert kv.tolist() == list(range(12 * group, 12 * group + 12))
    assert q.tolist() == list(range(24 * group, 24 * group + 24))


def test_which_models_take_which_path(bert_bundle, folders):
    bare = bert_bundle.module  # a sentence encoder: its output is the hidden width
    assert not prunes_hidden(bare, HALF)
    classifier = load_hf(folders["bert"], TaskSpec()).module
    assert prunes_hidden(classifier, HALF)
    assert not prunes_hidden(classifier, ChannelTargets(skip=("model.bert.encoder.layer.0",)))
    classifier.model.prune_heads({0: [1]})  # layers with different head counts: encoder path
    assert not prunes_hidden(classifier, HALF)
    resnet = load_hf(folders["resnet"], TaskSpec()).module
    assert prunes_cnn_widths(resnet, HALF) and not prunes_hidden(resnet, HALF)
    assert not prunes_cnn_widths(resnet, ChannelTargets(skip=("model.classifier.1",)))


def test_a_model_type_outside_the_width_table_is_named():
    from transformers import T5Config

    with pytest.raises(CompressorError, match="model_type 't5' is not in the width table"):
        layout_of(T5Config())


def test_gpt2_packed_queries_are_scaled_too(folders):
    """GPT-2 keeps q, k, v in one Conv1D: only its query third is scaled, so layer 0 attends as
    the original's query/key columns on the kept channels do at the original 1/sqrt(8)."""
    lm = load_hf(folders["gpt2"], TaskSpec()).module.model
    layout, original = layout_of(lm.config), copy.deepcopy(lm)
    plan = plan_widths(lm, layout, ChannelTargets(amount=0.5, head_amount=0.0))
    assert (plan.heads, plan.head_dim) == ((4, 4), (8, 4))
    rebuild(lm, layout, plan)
    ids = torch.tensor([[5, 60, 7, 300, 11]])
    with torch.no_grad():
        out = lm(ids, output_attentions=True, output_hidden_states=True)
        x = lm.transformer.h[0].ln_1(out.hidden_states[0])
        attn = original.transformer.h[0].attn.c_attn
        w, q = attn.weight[plan.keep["h"]], plan.keep[("q", 0)]
        query, key = ((x @ w[:, i] + attn.bias[i]).view(1, 5, 4, 4).transpose(1, 2)
                      for i in (q, q + 32))  # fmt: skip
        scores = (query @ key.transpose(-1, -2) / 8**0.5).masked_fill(
            ~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf")
        )
    assert torch.allclose(out.attentions[0], scores.softmax(-1), atol=1e-6)


def test_amount_zero_rebuilds_the_same_model(folders):
    bundle = load_hf(folders["llama"], TaskSpec())
    same, stats = _pruned(bundle, ChannelTargets(amount=0.0))
    widths = (stats["hidden"], stats["kv_heads"], stats["intermediate"])
    assert widths == ([48, 48], [2, 2], [96, 96])
    feeds = bundle.example_inputs
    assert _max_diff(torch_run(same)(feeds), torch_run(bundle)(feeds)) == 0.0
