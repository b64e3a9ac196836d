"""TFLite exporter: onnx2tf + TFLiteConverter, run with ai-edge-litert on the digits CNN."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgecompress.exporters.tflite.exporter import TFLiteConfig, export_tflite, per_channel_share
from edgecompress.runtimes import TFLiteRunner, torch_run


@pytest.mark.slow  # ~30 s: TensorFlow import + onnx2tf + two conversions
def test_digits_fp32_and_full_int8(digits_bundle, run_ctx, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / "out"
    made = {
        v.name: v
        for v in export_tflite(
            digits_bundle,
            TFLiteConfig(backend="onnx2tf", quantize=["none", "int8-full"]),
            run_ctx,
            out,
        )
    }
    fp32, int8 = made["tflite-fp32"], made["tflite-int8-full"]
    assert sorted(p.name for p in out.iterdir()) == ["model.int8.tflite", "model.tflite"]
    assert fp32.validation["max_abs_diff"] <= 1e-4
    assert int8.validation["metric"]["value"] >= run_ctx.baseline["value"] - 0.01
    # the IO spec describes the file: NHWC input, int8 with its scale and zero point
    image = int8.io.inputs[0]
    assert image.shape == ("batch", 8, 8, 1) and image.dtype == "int8"
    assert image.scale > 0 and image.zero_point is not None
    assert fp32.io.inputs[0].shape == ("batch", 8, 8, 1) and fp32.io.inputs[0].dtype == "float32"
    # fed NHWC directly, the fp32 file matches torch on NCHW
    x = run_ctx.eval_split.x[:4]
    got = TFLiteRunner(fp32.path, io=fp32.io).run({"image": x.transpose(0, 2, 3, 1)})["logits"]
    np.testing.assert_allclose(got, torch_run(digits_bundle)({"image": x})["logits"], atol=1e-4)
    ratio = fp32.size_bytes / int8.size_bytes
    print(f"tflite fp32 {fp32.size_bytes} B, int8 {int8.size_bytes} B, ratio {ratio:.2f}")
    # 3.06 before: per-channel scales + int64 zero points (24 B a channel), long tensor names
    assert ratio >= 3.5
    assert int8.details["weight_scales"] == "per-tensor"
    assert "validated" in int8.details["weight_scales_choice"]
    assert int8.details["backend"] == "onnx2tf" and int8.details["backend_choice"] == "configured"
    assert int8.details["bytes_saved"] > 1000 and fp32.details["bytes_saved"] > 1000
    names = [d["name"] for d in Interpreter(model_path=str(int8.path)).get_tensor_details()]
    assert "image" in names and "logits" in names and max(map(len, names)) <= 6


def test_per_channel_share_of_the_digits_cnn(digits_bundle):
    # 186 output channels x 24 B over 27,920 int8 weights
    assert per_channel_share(digits_bundle.module) == pytest.approx(186 * 24 / 27920)


def test_config_weight_scales_round_trip():
    config = TFLiteConfig(weight_scales="per-channel", compact_names=False)
    assert TFLiteConfig.from_json(config.to_json()) == config
    with pytest.raises(Exception, match="weight_scales"):
        TFLiteConfig(weight_scales="per-row")


def test_onnx_path_never_imports_tensorflow():
    code = (
        "import sys; import edgecompress.exporters.onnx.exporter, "
        "edgecompress.exporters.tflite.exporter, "
        "edgecompress.cli.export; assert 'tensorflow' not in sys.modules, 'tf imported'; "
        "assert 'onnxruntime' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
