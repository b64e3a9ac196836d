"""Causal LMs in a Lambda zip: generate.py's greedy loops, KV-cached and prefix (against
transformers' own generate()), its request checks, and ``compress package lambda`` answering
real prompts with the cached loop."""

from __future__ import annotations

import json
import zipfile

import pytest
from click.testing import CliRunner

from edgecompress.awslambda.generation import load_template
from edgecompress.cli.main import cli
from edgecompress.exporters.onnx import metadata
from edgecompress.exporters.onnx.export import export_module
from edgecompress.exporters.onnx.quantize import quantize_nbits
from edgecompress.loaders import load_hf
from edgecompress.model import TaskSpec
from edgecompress.runtimes import OnnxRunner
from tests.hf.lm_models import lm_dirs

SETTINGS = {"max_new_tokens": 64, "default_max_new_tokens": 16}


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    return lm_dirs(tmp_path_factory)


@pytest.fixture(scope="module")
def onnx_files(lms, tmp_path_factory):
    """name -> (float .onnx, int4 .onnx, bundle), stamped like the exporter stamps them."""
    files = {}
    for name, folder in lms.items():
        bundle = load_hf(folder, TaskSpec())
        out = tmp_path_factory.mktemp(f"onnx-{name}")
        export_module(bundle, bundle.module, out / "model.onnx", 18, "torchscript")
        quantize_nbits(out / "model.onnx", out / "model.int4.onnx", 4, 32, True, [], 4, True)
        for path in (out / "model.onnx", out / "model.int4.onnx"):
            metadata.stamp(path, {"generation": bundle.extra["generation"]})
        files[name] = (out / "model.onnx", out / "model.int4.onnx", bundle)
    return files


def session_inputs(path):
    """io_spec.json's ``inputs`` for a file (what the zip's generate.py reads)."""
    return [{"name": i.name, "shape": i.shape, "dtype": "float32"}
            for i in OnnxRunner(path).session.get_inputs()]  # fmt: skip


@pytest.mark.parametrize("name", ["gpt2", "llama"])
@pytest.mark.parametrize("cached", [True, False], ids=["kv-cache", "prefix"])
def test_greedy_loop_on_onnx_matches_transformers_generate(onnx_files, name, cached):
    """Both loops over the same file (cached: prompt once, then one token a step; prefix: the
    whole sequence every step) give transformers' own generate() tokens."""
    import torch

    path, _, bundle = onnx_files[name]
    generate = load_template()
    past = generate.cache_inputs(session_inputs(path))
    assert len(past) == 4  # 2 layers, key and value
    assert {p[1] for p in past} == {{"gpt2": 4, "llama": 2}[name]}  # Llama: 2 KV heads of 4
    prompt = [1, 40, 71, 300, 42] if name == "llama" else [40, 71, 300, 42]
    eos = bundle.extra["generation"]["eos_token_ids"]
    settings = {**SETTINGS, "eos_token_ids": eos, "context_length": 128}
    run = OnnxRunner(path).run
    new, reason, used = generate.greedy(run, prompt, 12, settings, past=past if cached else None)
    hf = bundle.module.model
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False,
                          eos_token_id=eos, pad_token_id=eos[0])  # fmt: skip
    want = out[0, len(prompt) :].tolist()
    assert [t for t in want if t not in eos] == new
    stopped = len(want) < 12 or want[-1] in eos
    assert used == len(prompt) and reason == ("eos" if stopped else "length")


def test_cached_loop_feeds_one_token_and_the_present_back():
    import numpy as np

    generate = load_template()
    seen = []

    def run(feeds):
        seen.append((feeds["input_ids"].shape[1], feeds["attention_mask"].shape[1],
                     feeds["past_key_values.0.key"].shape[2]))  # fmt: skip
        total = feeds["attention_mask"].shape[1]
        logits = np.eye(8, dtype="float32")[feeds["input_ids"] % 8]
        return {"logits": logits, "present.0.key": np.zeros((1, 2, total, 4), "float32")}

    past = generate.cache_inputs([{"name": "past_key_values.0.key", "shape": ["batch", 2, "p", 4]}])
    new, reason, used = generate.greedy(run, [5, 6, 7], 3, {}, past=past)
    assert seen == [(3, 3, 0), (1, 4, 3), (1, 5, 4)]
    assert generate.empty_past([{"name": "past_key_values.0.key", "shape": ["b", 2, "p", 4]},
                                {"name": "input_ids", "shape": ["b", "s"]}], 3)[
        "past_key_values.0.key"].shape == (3, 2, 0, 4)  # fmt: skip
    assert new == [7, 7, 7] and used == 3 and reason == "length"


def test_long_prompts_keep_their_last_tokens():
    generate = load_template()
    seen = []

    def run(feeds):
        seen.append(feeds["input_ids"].shape[1])
        import numpy as np

        return {"logits": np.eye(8, dtype="float32")[feeds["input_ids"] % 8]}

    new, reason, used = generate.greedy(run, list(range(20)), 4, {"context_length": 10})
    assert seen == [6, 7, 8, 9] and used == 6 and reason == "length"
    assert new == [3, 3, 3, 3]  # 19 % 8 = 3, then 3 again


@pytest.mark.parametrize(
    ("request_", "word"),
    [
        ({"prompt": "Hi", "max_new_tokens": 65}, "1..64"),
        ({"prompt": "Hi", "max_new_tokens": 0}, "1..64"),
        ({"prompt": "Hi", "max_new_tokens": True}, "integer"),
        ({"prompt": "Hi", "max_new_tokens": 2.0}, "integer"),
        ({"prompt": ""}, "non-empty"),
        ({"prompt": ["a"]}, "string"),
        ({"prompt": "Hi", "temperature": 0.7}, "unknown field"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(request_, word):
    generate = load_template()
    with pytest.raises(generate.BadPrompt, match=word):
        generate.parse(request_, SETTINGS)


def test_max_new_tokens_defaults_and_bound_is_inclusive():
    generate = load_template()
    assert generate.parse({"prompt": "Hi"}, SETTINGS) == ("Hi", 16)
    assert generate.parse({"prompt": "Hi", "max_new_tokens": 64}, SETTINGS) == ("Hi", 64)


@pytest.mark.slow  # two zips, each run under awslambdaric
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_package_lambda_answers_prompts(onnx_files, lms, name, tmp_path):
    _, int4, _ = onnx_files[name]
    out = tmp_path / "pkg"
    args = ["package", "lambda", str(int4), "--tokenizer", str(lms[name]), "-o", str(out), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)["lambda"]["self_check"]
    if "skipped" in check:
        pytest.skip(check["skipped"])
    events = {e["event"]: e for e in check["events"]}
    assert check["passed"] and len(events) == 9
    assert events["direct prompt"]["token_ids"] == events["direct prompt"]["expected_token_ids"]
    assert 1 <= len(events["direct prompt"]["token_ids"]) <= 8
    assert events["max_new_tokens 65"]["status"] == 400
    assert "1..64" in events["max_new_tokens 65"]["error"]
    with zipfile.ZipFile(next(out.glob("lambda-*.zip"))) as zf:
        spec = json.loads(zf.read("io_spec.json"))
        assert "generate.py" in zf.namelist()
    assert spec["task"] == "generation"
    assert spec["generation"]["max_new_tokens"] == 64 and spec["generation"]["cache"] is True
    assert "past_key_values.1.value" in [i["name"] for i in spec["inputs"]]
