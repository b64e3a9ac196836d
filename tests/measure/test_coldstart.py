import pytest

from edgecompress.errors import CompressError
from edgecompress.measure import coldstart, memory
from tests.bench_fixtures import make_zip


def test_cold_start_model_breakdown(bench_onnx, bench_data):
    feeds = {"image": bench_data.test.x[:1]}
    c = coldstart.cold_start_model(bench_onnx, feeds, runs=2)
    assert c["runs"] == 2 and len(c["per_run"]) == 2
    for key in ("import_ms", "load_ms", "first_inference_ms", "peak_rss_mib"):
        assert c[key] > 0, key
    assert c["total_ms"] == pytest.approx(
        c["import_ms"] + c["load_ms"] + c["first_inference_ms"], rel=0.35
    )
    # the child's own peak RSS, not the (torch-laden) parent's: onnxruntime + numpy only
    assert 20 < c["peak_rss_mib"] < 1024


def test_cold_start_corrupt_model_names_the_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(CompressError, match="broken.onnx: benchmark process failed"):
        coldstart.cold_start_model(bad, {}, runs=1)
    with pytest.raises(CompressError, match="no cold-start probe for '.pt'"):
        coldstart.cold_start_model(tmp_path / "x.pt", {}, runs=1)


def test_cold_start_zip_with_init_timings(bench_zip, bench_data):
    event = {"inputs": {"image": bench_data.test.x[:1].tolist()}}
    c = coldstart.cold_start_zip(bench_zip, event, runs=2)
    assert c["breakdown"] is True
    for key in ("import_ms", "load_ms", "init_ms", "first_inference_ms", "peak_rss_mib"):
        assert c[key] > 0, key
    # the handler's own import + load fit inside the measured module import
    assert c["import_ms"] + c["load_ms"] <= c["init_ms"]
    assert c["total_ms"] == pytest.approx(c["init_ms"] + c["first_inference_ms"], rel=0.35)


def test_cold_start_zip_without_init_timings(bench_onnx, bench_data, tmp_path):
    from tests.bench_fixtures import HANDLER

    plain = make_zip(
        tmp_path / "plain.zip", bench_onnx, HANDLER.replace("INIT_TIMINGS =", "_TIMINGS =")
    )
    event = {"inputs": {"image": bench_data.test.x[:1].tolist()}}
    c = coldstart.cold_start_zip(plain, event, runs=1)
    assert c["breakdown"] is False and c["import_ms"] is None and c["load_ms"] is None
    assert c["init_ms"] > 0 and "reported together" in c["note"]


def test_failing_handler_is_an_error(bench_onnx, tmp_path):
    broken = make_zip(
        tmp_path / "broken.zip",
        bench_onnx,
        "def handler(event, context):\n    raise KeyError('inputs')\n",
    )
    with pytest.raises(CompressError, match="broken.zip: benchmark process failed.*KeyError"):
        coldstart.cold_start_zip(broken, {}, runs=1)
    not_zip = tmp_path / "nozip.zip"
    not_zip.write_text("plain text")
    with pytest.raises(CompressError, match="nozip.zip: not a readable zip"):
        coldstart.cold_start_zip(not_zip, {}, runs=1)


def test_sizes(bench_zip, bench_onnx):
    sizes = memory.zip_sizes(bench_zip)
    assert sizes["zipped_bytes"] == bench_zip.stat().st_size
    assert sizes["unzipped_bytes"] > bench_onnx.stat().st_size  # model + handler
    assert memory.file_size(bench_onnx) == bench_onnx.stat().st_size
    with pytest.raises(CompressError, match="file not found"):
        memory.file_size(bench_onnx.with_name("absent.onnx"))
