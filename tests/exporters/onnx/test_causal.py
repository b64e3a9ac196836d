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


def dims(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_files_carry_a_kv_cache_held_to_the_cacheless_logits(exported, name):
    """past_key_values.* in, present.* out ([batch, kv_heads, sequence, head_dim]: Llama has
    2 KV heads of 4); a prefill then ~33 single-token steps give the file's cache-less logits."""
    out, variants = exported[name]
    kv_heads, head_dim = {"gpt2": (4, 8), "llama": (2, 12)}[name]
    for file in ("model.onnx", "model.int4.onnx"):
        graph = onnx.load(str(out / file)).graph
        inputs = {i.name: dims(i) for i in graph.input}
        outputs = {o.name: dims(o) for o in graph.output}
        assert list(inputs)[:2] == ["input_ids", "attention_mask"] and len(inputs) == 6
        assert inputs["past_key_values.1.value"] == ["batch", kv_heads, "past_sequence", head_dim]
        assert outputs["present.1.value"] == [
            "batch",
            kv_heads,
            "past_sequence + sequence",
            head_dim,
        ]
        assert inputs["attention_mask"] == ["batch", "past_sequence + sequence"]
        assert list(outputs)[0] == "logits"
    fp32 = variants["onnx-fp32"]["validation"]["kv_cache"]
    int8 = variants["onnx-int8-dynamic"]["validation"]["kv_cache"]
    int4 = variants["onnx-int4-weight-only"]["validation"]["kv_cache"]
    print(name, fp32, int8, int4)
    assert fp32["steps"] >= 30 and fp32["max_abs_diff"] < 1e-4 and fp32["token_agreement"] == 1
    # MatMulNBits quantizes activations row by row: a step sees what the whole sequence sees.
    assert int4["max_abs_diff"] < 1e-3
    # int8-dynamic scales activations per call (per tensor): steps see other scales.
    assert 0.8 <= int8["token_agreement"] < 1 and int8["max_abs_diff"] > 1e-2


def test_cache_breaches_name_the_limit():
    from edgecompress.exporters.validate_lm import _cache_breaches

    cache = {"steps": 33, "max_abs_diff": 3e-3, "token_agreement": 0.7}
    assert "by 0.003 > allowed 0.0001" in _cache_breaches(cache, {"max_abs_diff": 1e-4})[0]
    assert "0.7000 < allowed 0.8" in _cache_breaches(cache, {"min_token_agreement": 0.8})[0]
    assert _cache_breaches(cache, {"max_abs_diff": 1e-2}) == []
    assert _cache_breaches(None, {"max_abs_diff": 0}) == []


def test_int8_static_on_a_cached_lm_exits_1_naming_the_alternatives(lms, tmp_path):
    """Static calibration sees only empty pasts: refused before calibrating."""
    result = export(lms["gpt2"], tmp_path / "out", ["int8-static"])
    assert result.exit_code == 1
    assert "int8-static: not supported for KV-cached causal LMs" in result.output
    assert "use int8-dynamic, int8-token" in result.output
    assert not (tmp_path / "out").exists()
