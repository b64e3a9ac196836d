"""LiteRT files: NHWC layout and int8 inputs, through the cold-start probe and the bench CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.measure import coldstart, single


@pytest.fixture(scope="module")
def tflite_int8(tmp_path_factory):
    tf = pytest.importorskip("tensorflow")
    from edgecompress.data import load_digits

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((8, 8, 1), name="image")
    x = tf.keras.layers.Conv2D(4, 3, activation="relu")(inp)
    out = tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, out))
    samples = load_digits().train.x[:32].transpose(0, 2, 3, 1)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None]] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("tflite") / "model.int8.tflite"
    path.write_bytes(converter.convert())
    return path


def test_file_io_feeds_float_nhwc(tflite_int8):
    io = single.file_io(tflite_int8)
    assert io.inputs[0].dtype == "float32"  # int8 input: the runner quantizes float feeds
    assert io.inputs[0].shape[1:] == (8, 8, 1)
    feeds, source = single.make_feeds(io, "digits", batch=3, seq_len=None, n=2)
    arr = next(iter(feeds[0].values()))
    assert arr.shape == (3, 8, 8, 1) and source == "digits test split"
    assert np.count_nonzero(arr) > 0


def test_cold_start_tflite(tflite_int8):
    io = single.file_io(tflite_int8)
    feeds, _ = single.make_feeds(io, "digits", 1, None, 1)
    c = coldstart.cold_start_model(tflite_int8, feeds[0], runs=1)
    for key in ("import_ms", "load_ms", "first_inference_ms", "peak_rss_mib"):
        assert c[key] > 0, key


def test_bench_cli_tflite(tflite_int8):
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            str(tflite_int8),
            "--data",
            "digits",
            "--runs",
            "20",
            "--cold-runs",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    s = doc["latency_ms"]["1"]
    assert s["runs"] == 20 and 0 < s["p50"] <= s["p95"] <= s["p99"]
    assert doc["size_bytes"] == tflite_int8.stat().st_size
