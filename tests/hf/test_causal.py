"""Causal LM folders (GPT-2, Llama): family, wrapper, IO spec, task, inspect."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.hf.family import Family, family_of, read_config
from edgecompress.loaders import load_hf
from edgecompress.model import TaskKind, TaskSpec
from tests.hf.lm_models import lm_dirs


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    return lm_dirs(tmp_path_factory)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_family_is_causal_lm(lms, name):
    assert family_of(read_config(lms[name])) == Family.causal_lm


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_loader_gives_logits_for_every_position_and_a_generation_task(lms, name):
    bundle = load_hf(lms[name], TaskSpec())  # the CLI's default guess: classification
    assert bundle.task.kind == TaskKind.generation
    assert (bundle.task.data, bundle.task.metric) == ("sentences", "next_token_agreement")
    assert bundle.io.input_names == ["input_ids", "attention_mask"]
    assert bundle.io.outputs[0].name == "logits"
    assert bundle.io.outputs[0].shape == ("batch", "sequence", 1000)
    eos = {"gpt2": [0], "llama": [2]}[name]
    assert bundle.extra["generation"]["eos_token_ids"] == eos
    assert bundle.extra["generation"]["context_length"] == 128


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_padding_left_or_right_gives_the_unpadded_logits(lms, name):
    """Position ids follow the attention mask, so a padded row's real positions see exactly
    what the same text alone sees (what batched validation relies on)."""
    import torch

    module = load_hf(lms[name], TaskSpec()).module
    ids = torch.tensor([[11, 57, 300, 42, 7]])
    with torch.no_grad():
        alone = module(ids, torch.ones_like(ids))[0]
        right = module(torch.cat([ids, torch.zeros(1, 3, dtype=ids.dtype)], 1),
                       torch.tensor([[1] * 5 + [0] * 3]))[0, :5]  # fmt: skip
        left = module(torch.cat([torch.zeros(1, 3, dtype=ids.dtype), ids], 1),
                      torch.tensor([[0] * 3 + [1] * 5]))[0, 3:]  # fmt: skip
    np.testing.assert_allclose(right.numpy(), alone.numpy(), atol=1e-5)
    np.testing.assert_allclose(left.numpy(), alone.numpy(), atol=1e-5)


def test_wrapper_matches_the_transformers_model(lms):
    """The wrapper's own 4-D mask gives the logits transformers gives from a 2-D mask."""
    import torch

    module = load_hf(lms["llama"], TaskSpec()).module
    ids = torch.tensor([[1, 40, 41, 300, 7, 9]])
    with torch.no_grad():
        want = module.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        got = module(ids, torch.ones_like(ids))
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_inspect_names_logits_and_the_generation_task(lms, name):
    result = CliRunner().invoke(cli, ["inspect", str(lms[name]), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["task"]["kind"] == "generation"
    assert summary["io"]["outputs"] == [
        {"name": "logits", "dtype": "float32", "shape": ["batch", "sequence", 1000]}
    ]
    assert summary["params"] > 30_000


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_cached_steps_give_the_cacheless_logits(lms, name):
    """A prefill with an empty past then single-token steps (the exported graph's route) give
    the full forward pass's logits, left padding included; the cache has KV-head shapes."""
    import torch

    module = load_hf(lms[name], TaskSpec()).module
    facts = module.cache_facts()
    assert facts == {"gpt2": {"layers": 2, "kv_heads": 4, "head_dim": 8},
                     "llama": {"layers": 2, "kv_heads": 2, "head_dim": 12}}[name]  # fmt: skip
    ids = torch.tensor([[0, 0, 11, 57, 300, 42, 7, 9], [11, 57, 300, 42, 7, 9, 13, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8])
    past = [torch.zeros(2, facts["kv_heads"], 0, facts["head_dim"])] * (2 * facts["layers"])
    with torch.no_grad():
        full = module(ids, mask)
        logits, *past = module.step(ids[:, :4], mask[:, :4], *past)
        chunks = [logits]
        for t in range(4, 8):
            logits, *past = module.step(ids[:, t : t + 1], mask[:, : t + 1], *past)
            chunks.append(logits)
    assert past[0].shape == (2, facts["kv_heads"], 8, facts["head_dim"])
    got = torch.cat(chunks, 1)
    np.testing.assert_allclose(got[mask > 0].numpy(), full[mask > 0].numpy(), atol=1e-4)
