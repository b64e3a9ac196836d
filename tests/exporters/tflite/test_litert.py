"""litert-torch backend: torch.export -> .tflite without TensorFlow, PT2E int8, ai-edge-litert."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgecompress.context import RunContext
from edgecompress.data import DataSplits, Split, load_sentences
from edgecompress.errors import ExportError
from edgecompress.exporters.base import ExportedModel
from edgecompress.exporters.tflite import exporter as tfl
from edgecompress.exporters.tflite.exporter import Backend, TFLiteConfig, export_tflite
from edgecompress.iospec import IOSpec
from edgecompress.loaders import load_hf
from edgecompress.model import TaskKind, TaskSpec
from edgecompress.runtimes import RowRunner, TFLiteRunner, pad_row, torch_run
from tests.conftest import build_tiny_bert


def _labelled(split: Split) -> Split:
    """A labelled text split: does the sentence contain the word 'the'?"""
    labels = np.array([int("the" in t.lower().split()) for t in split.texts])
    return Split(texts=split.texts, labels=labels)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = build_tiny_bert(tmp_path_factory.mktemp("cls"), layers=2, classifier=True)
    task = TaskSpec(kind=TaskKind.classification, data="sentences", max_length=32)
    data = load_sentences()
    splits = DataSplits("labelled", *(_labelled(s) for s in (data.train, data.val, data.test)))
    return load_hf(folder, task), splits


@pytest.mark.slow  # ~60 s on a busy 2-core machine: three litert-torch conversions
def test_bert_classifier_fp32_dynamic_and_full_int8(classifier, tmp_path):
    bundle, data = classifier
    ctx = RunContext(data, tmp_path)
    config = TFLiteConfig(
        backend="litert-torch",
        quantize=["none", "int8-dynamic", "int8-full"],
        representative_samples=16,
    )
    made = {v.name: v for v in export_tflite(bundle, config, ctx, tmp_path / "out")}
    fp32, dyn, full = made["tflite-fp32"], made["tflite-int8-dynamic"], made["tflite-int8-full"]
    assert fp32.validation["max_abs_diff"] <= 1e-4 and fp32.validation["cosine"] >= 0.9999
    assert fp32.validation["metric"]["value"] == fp32.validation["metric"]["torch_value"]
    for q in (dyn, full):
        assert q.validation["passed"] and q.validation["samples"] >= 500
        drop = q.validation["metric"]["torch_value"] - q.validation["metric"]["value"]
        assert drop <= 0.01 and q.validation["cosine"] >= 0.99
        assert q.size_bytes < fp32.size_bytes
    assert full.details["quantization"].startswith("PT2E static int8")
    assert full.details["calibration_samples"] == 16
    # the outlier rewrites ran (random init: LayerNorms smoothed) and every encoder Linear
    # (2 layers x 6) runs as an int8 FULLY_CONNECTED in the file
    assert full.details["smoothquant"]["layer_norms"] >= 1
    assert full.details["ops_int8"]["FULLY_CONNECTED"] >= 12
    assert full.details["ops_convert"]["QUANTIZE"] >= 1
    # PT2E leaves embedding tables float; they are int8 afterwards
    assert full.details["ops_int8"]["EMBEDDING_LOOKUP"] >= 1
    assert "EMBEDDING_LOOKUP" not in full.details["ops_float"]
    assert full.size_bytes < 0.7 * fp32.size_bytes  # 0.58 measured; float tables: ~0.8
    assert all(v.details["backend"] == "litert-torch" for v in made.values())
    # the file takes int32 token ids at a fixed [1, 32]; RowRunner pads real batches to it
    ids = fp32.io.inputs[0]
    assert (ids.name, ids.dtype, ids.shape) == ("input_ids", "int32", (1, 32))
    feeds = bundle.feeds(data.test.take(3))
    shapes = {s.name: (1, 32) for s in bundle.io.inputs}
    runner = RowRunner(TFLiteRunner(fp32.path, io=fp32.io), shapes)
    got = runner.run(feeds)["logits"]
    np.testing.assert_allclose(got, torch_run(bundle)(feeds)["logits"], atol=1e-4)


@pytest.mark.slow  # ~30 s: two litert-torch conversions and a PT2E calibration
def test_digits_cnn_fp32_and_full_int8(digits_bundle, run_ctx, tmp_path):
    config = TFLiteConfig(backend="litert-torch", quantize=["none", "int8-full"])
    made = {v.name: v for v in export_tflite(digits_bundle, config, run_ctx, tmp_path / "o")}
    fp32, int8 = made["tflite-fp32"], made["tflite-int8-full"]
    assert fp32.validation["max_abs_diff"] <= 1e-4
    assert int8.validation["metric"]["value"] >= run_ctx.baseline["value"] - 0.01
    assert fp32.io.inputs[0].shape == (1, 1, 8, 8)  # NCHW as in torch, batch 1
    assert fp32.size_bytes / int8.size_bytes >= 2.5
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "model.int8.tflite",
        "model.tflite",
    ]


def test_pad_row_pads_tokens_with_mask_zero():
    feeds = {"input_ids": np.array([[2, 7, 3]]), "attention_mask": np.array([[1, 1, 1]])}
    padded = pad_row(feeds, {"input_ids": (1, 5), "attention_mask": (1, 5)})
    assert padded["input_ids"].tolist() == [[2, 7, 3, 0, 0]]
    assert padded["attention_mask"].tolist() == [[1, 1, 1, 0, 0]]
    cut = pad_row({"input_ids": np.arange(8)[None]}, {"input_ids": (1, 4)})
    assert cut["input_ids"].tolist() == [[0, 1, 2, 3]]


def test_row_runner_feeds_one_padded_row_at_a_time():
    seen = []

    class Echo:
        def run(self, feeds):
            seen.append(feeds["x"].shape)
            return {"y": feeds["x"].sum(1, keepdims=True)}

    out = RowRunner(Echo(), {"x": (1, 4)}).run({"x": np.array([[1, 2], [3, 4], [5, 6]])})
    assert seen == [(1, 4)] * 3 and out["y"].ravel().tolist() == [3, 7, 11]


def test_backend_config_round_trip_and_errors():
    config = TFLiteConfig(backend="onnx2tf", sequence_length=64)
    assert TFLiteConfig.from_json(config.to_json()) == config
    assert TFLiteConfig().backend == Backend.auto
    with pytest.raises(Exception, match="backend"):
        TFLiteConfig(backend="tensorflow")
    with pytest.raises(Exception, match="sequence_length"):
        TFLiteConfig(sequence_length=1)


def _fake_job(name: str, fail: bool):
    class Job:
        def __init__(self, bundle, config, ctx, work):
            self.work = work

        def run(self, schemes):
            if fail:
                raise ExportError(f"{name} cannot")
            path = self.work / "model.tflite"
            path.write_bytes(b"x")
            return [ExportedModel("tflite-fp32", "tflite", path, "fp32", IOSpec([], []))]

    return Job


def test_auto_order_text_litert_first_others_onnx2tf_first():
    assert tfl.choose_backend(Backend.auto, text=True) == [Backend.litert_torch, Backend.onnx2tf]
    assert tfl.choose_backend(Backend.auto, text=False) == [Backend.onnx2tf, Backend.litert_torch]
    assert tfl.choose_backend(Backend.onnx2tf, text=True) == [Backend.onnx2tf]


def test_auto_falls_back_and_says_why(monkeypatch, digits_bundle, run_ctx, tmp_path):
    monkeypatch.setattr(tfl, "_TFLiteJob", _fake_job("onnx2tf", fail=True))
    monkeypatch.setattr(tfl, "LiteRTJob", _fake_job("litert", fail=False))
    (made,) = export_tflite(digits_bundle, TFLiteConfig(quantize=["none"]), run_ctx, tmp_path)
    assert made.details["backend"] == "litert-torch"
    assert "onnx2tf failed: onnx2tf cannot" in made.details["backend_choice"]
    # a configured backend is not replaced: its error is the export's error
    with pytest.raises(ExportError, match="onnx2tf cannot"):
        export_tflite(digits_bundle, TFLiteConfig(backend="onnx2tf"), run_ctx, tmp_path / "b")
    monkeypatch.setattr(tfl, "LiteRTJob", _fake_job("litert", fail=True))
    with pytest.raises(ExportError, match="no backend could export"):
        export_tflite(digits_bundle, TFLiteConfig(), run_ctx, tmp_path / "c")


def test_litert_path_never_imports_tensorflow():
    code = (
        "import sys, litert_torch, edgecompress.exporters.tflite.litert; "
        "assert 'tensorflow' not in sys.modules, 'tf imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.slow  # ~20 s idle: TensorFlow and litert-torch imports in a child process
def test_converts_after_tensorflow_was_imported(tmp_path):
    # without the guard the child aborts: "LLVM ERROR: inconsistency in registered
    # CommandLine options" (TensorFlow's and Triton's LLVM in one process)
    code = (
        "import sys, tensorflow, torch; from pathlib import Path; "
        "from edgecompress.exporters.tflite.litert import convert_module; "
        "m = torch.nn.Linear(4, 3).eval(); "
        f"dst = Path({str(tmp_path / 'm.tflite')!r}); "
        "d = convert_module(m, (torch.ones(1, 4),), dst, 'fp32'); "
        "assert d['triton'].startswith('blocked'), d"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "m.tflite").stat().st_size > 0
