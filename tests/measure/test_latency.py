import numpy as np
import pytest

from edgecompress.measure import latency
from edgecompress.runtimes import OnnxRunner


def test_summarize_ms_arithmetic():
    s = latency.summarize_ms([1.0, 2.0, 3.0, 4.0, 10.0], batch=4)
    assert s["mean"] == pytest.approx(4.0)
    assert s["p50"] == pytest.approx(3.0)
    assert s["min"] == 1.0 and s["max"] == 10.0 and s["runs"] == 5
    assert s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]
    assert s["throughput_per_s"] == pytest.approx(4 * 1000 / 4.0)
    with pytest.raises(ValueError):
        latency.summarize_ms([])


def test_feeds_from_split_uses_real_samples(bench_bundle, bench_data):
    test = bench_data.test
    feeds = latency.feeds_from_split(bench_bundle, test, batch=4, n=100)
    assert len(feeds) == 100
    first = feeds[0]["image"]
    assert first.shape == (4, 1, 8, 8) and first.dtype == np.float32
    np.testing.assert_array_equal(first, test.x[:4])
    assert np.count_nonzero(first) > 0
    # 100 batches of 4 wrap around the 360-sample split
    np.testing.assert_array_equal(feeds[90]["image"][0], test.x[360 % len(test)])


def test_measure_latency_real_onnx(bench_bundle, bench_data, bench_onnx):
    feeds = latency.feeds_from_split(bench_bundle, bench_data.test, batch=2, n=8)
    s = latency.measure_latency(
        OnnxRunner(bench_onnx, 1, bench_bundle.io), feeds, runs=40, warmup=3
    )
    assert s["runs"] == 40 and s["batch"] == 2 and len(s["samples"]) == 40
    assert 0 < s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]
    assert s["throughput_per_s"] == pytest.approx(2 * 1000 / s["mean"])


def test_time_budget_stops_early(bench_bundle, bench_data, bench_onnx):
    feeds = latency.feeds_from_split(bench_bundle, bench_data.test, batch=1, n=2)
    s = latency.measure_latency(
        OnnxRunner(bench_onnx, 1, bench_bundle.io), feeds, runs=500, warmup=0, time_budget_s=1e-9
    )
    assert s["runs"] == 1


def test_fit_seq_len_pads_and_cuts():
    feeds = {
        "input_ids": np.array([[5, 6, 7]]),
        "attention_mask": np.array([[1, 1, 1]]),
        "pixel": np.ones((1, 3), np.float32),
    }
    padded = latency.fit_seq_len(feeds, 5)
    np.testing.assert_array_equal(padded["input_ids"], [[5, 6, 7, 0, 0]])
    np.testing.assert_array_equal(padded["attention_mask"], [[1, 1, 1, 0, 0]])
    assert padded["pixel"].shape == (1, 3)
    np.testing.assert_array_equal(latency.fit_seq_len(feeds, 2)["input_ids"], [[5, 6]])


def test_measure_zip_latency(bench_zip, bench_data):
    event = {"inputs": {"image": bench_data.test.x[:1].tolist()}}
    s = latency.measure_zip_latency(bench_zip, [event], runs=15, warmup=2)
    assert s["runs"] == 15
    assert 0 < s["p50"] <= s["p95"] <= s["p99"] <= s["max"]
