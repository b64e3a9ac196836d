"""Causal LMs (tiny GPT-2 and Llama, random weights) through ``compress export onnx``: float,
int8 and int4 files validated against torch by logits, next-token agreement and perplexity;
then ``compress package lambda`` whose self-check generates from real prompts."""

from __future__ import annotations

import json

import onnx
import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.exporters.onnx import metadata
from tests.hf.lm_models import lm_dirs

DATA = "tests.hf.lm_models:few_sentences"
# Random-weight models have sharp, structureless logits: int4 moves many top-1 tokens that a
# trained model keeps. These limits fit them (measured values in the asserts below); the
# defaults (0.9 int8, 0.75 int4) are for real models.
TINY_TOLERANCE = {
    "min_token_agreement": 0.8,
    "int4_min_token_agreement": 0.3,
    "max_perplexity_ratio": 1.05,
    "int4_max_perplexity_ratio": 1.2,
}


pytestmark = pytest.mark.slow  # two tiny LMs exported three ways: ~25 s of CPU


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    return lm_dirs(tmp_path_factory)


def export(folder, out, schemes=("int8-dynamic", "int4-weight-only"), tolerance=TINY_TOLERANCE):
    quantize = [arg for s in schemes for arg in ("--quantize", s)]
    args = ["export", "onnx", str(folder), *quantize, "--data", DATA, "-o", str(out), "--json",
            "--config", json.dumps({"tolerance": tolerance, "group_size": 32})]  # fmt: skip
    return CliRunner().invoke(cli, args)


@pytest.fixture(scope="module")
def exported(lms, tmp_path_factory):
    outs = {}
    for name, folder in lms.items():
        out = tmp_path_factory.mktemp(f"export-{name}") / "out"
        result = export(folder, out)
        assert result.exit_code == 0, result.output
        outs[name] = (out, {v["name"]: v for v in json.loads(result.stdout)["variants"]})
    return outs


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_float_file_matches_torch_logits(exported, name):
    _, variants = exported[name]
    fp32 = variants["onnx-fp32"]["validation"]
    assert fp32["passed"] and fp32["max_abs_diff"] < 1e-4
    assert fp32["next_token_agreement"] == 1.0
    assert fp32["perplexity_ratio"] == pytest.approx(1.0, abs=1e-4)
    assert fp32["positions"] > 500  # every real position of 24 sentences
    assert variants["onnx-fp32"]["details"]["exporter"] == "torchscript"


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_int8_and_int4_are_held_to_agreement_and_perplexity(exported, name):
    out, variants = exported[name]
    int8 = variants["onnx-int8-dynamic"]["validation"]
    int4 = variants["onnx-int4-weight-only"]["validation"]
    print(name, int8["next_token_agreement"], int8["perplexity_ratio"],
          int4["next_token_agreement"], int4["perplexity_ratio"])  # fmt: skip
    assert int8["tolerance"] == {"min_token_agreement": 0.8, "max_perplexity_ratio": 1.05}
    assert int8["next_token_agreement"] >= 0.8 and int4["next_token_agreement"] >= 0.3
    assert int4["perplexity_ratio"] <= 1.2
    sizes = {k: v["size_bytes"] for k, v in variants.items()}
    assert sizes["onnx-int4-weight-only"] < sizes["onnx-int8-dynamic"] < sizes["onnx-fp32"]
    facts = metadata.read(out / "model.int4.onnx")
    assert facts["generation"]["eos_token_ids"] == ({"gpt2": [0], "llama": [2]}[name])


def test_gpt2_conv1d_layers_become_matmulnbits(exported):
    """GPT-2's Conv1D layers export as Gemm; int4 rewrites them to MatMul first."""
    out, variants = exported["gpt2"]
    details = variants["onnx-int4-weight-only"]["details"]
    assert details["gemm_to_matmul"] == 8  # 4 Conv1D per block, 2 blocks
    ops = {n.op_type for n in onnx.load(str(out / "model.int4.onnx")).graph.node}
    assert "Gemm" not in ops and {"MatMulNBits", "GatherBlockQuantized"} <= ops


def test_llama_odd_width_gets_smaller_blocks(exported):
    """hidden 48: no block of 32 fits K = 48, so those layers get 16 and the details say so;
    K = 96 (the MLP's down projection) keeps 32."""
    _, variants = exported["llama"]
    details = variants["onnx-int4-weight-only"]["details"]
    fitted = details["block_sizes_fitted"]
    assert fitted and set(fitted.values()) == {16}
    assert not any("down_proj" in n for n in fitted)
    assert details["float_layers"] == {}
    assert details["float_matmuls_left"] == 5  # Q.K and P.V per layer, and the rotary one


def test_int4_breach_of_the_default_limit_exits_1(lms, tmp_path):
    """The default int4 limit (agreement 0.75) refuses the random Llama's int4 file."""
    result = export(lms["llama"], tmp_path / "out", ["int4-weight-only"], tolerance={})
    assert result.exit_code == 1
    assert "next-token agreement with torch" in result.output and "< allowed 0.75" in result.output
    assert not (tmp_path / "out").exists()
