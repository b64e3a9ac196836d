import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from tests import bench_fixtures as _fx
from tests.bench_fixtures import make_zip

# The benchmark fixtures (session-scoped; the digits run is shared with tests/benchmarks).
bench_bundle, bench_data, bench_onnx = _fx.bench_bundle, _fx.bench_data, _fx.bench_onnx
bench_onnx_int8, bench_zip, digits_run = _fx.bench_onnx_int8, _fx.bench_zip, _fx.digits_run


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_bench_onnx_json(bench_onnx):
    result = invoke(
        "bench",
        bench_onnx,
        "--runs",
        30,
        "--threads",
        1,
        "--threads",
        2,
        "--data",
        "digits",
        "--batch",
        4,
        "--cold-runs",
        1,
        "--json",
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "model" and doc["size_bytes"] == bench_onnx.stat().st_size
    assert doc["inputs"] == "digits test split"
    assert set(doc["latency_ms"]) == {"1", "2"}
    for s in doc["latency_ms"].values():
        assert s["runs"] == 30 and s["batch"] == 4
        assert 0 < s["p50"] <= s["p95"] <= s["p99"]
    cold = doc["cold_start_ms"]
    assert cold["import_ms"] > 0 and cold["load_ms"] > 0 and cold["first_inference_ms"] > 0


def test_bench_zip_breaks_cold_start_down(bench_zip):
    result = invoke(
        "bench", bench_zip, "--runs", 20, "--cold-runs", 2, "--data", "digits", "--json"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    cold = doc["cold_start_ms"]
    assert cold["breakdown"] is True and cold["runs"] == 2
    for key in ("import_ms", "load_ms", "first_inference_ms", "init_ms", "total_ms"):
        assert cold[key] > 0, key
    assert doc["zipped_bytes"] == bench_zip.stat().st_size
    assert "digits test split via model.onnx" in doc["event"]
    warm = doc["latency_ms"]["handler"]
    assert warm["runs"] == 20 and 0 < warm["p50"] <= warm["p95"] <= warm["p99"]
    text = invoke("bench", bench_zip, "--runs", 5, "--cold-runs", 1)
    assert text.exit_code == 0, text.output
    assert "import" in text.stdout and "load" in text.stdout and "first inference" in text.stdout


def test_bench_zip_uses_sample_event(bench_onnx, bench_data, tmp_path):
    event = {"inputs": {"image": bench_data.test.x[:2].tolist()}}
    z = make_zip(tmp_path / "with-event.zip", bench_onnx, event=event)
    result = invoke("bench", z, "--runs", 5, "--cold-runs", 1, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["event"] == "sample_event.json in the zip"


def test_bench_bad_input(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"x")
    result = invoke("bench", bad)
    assert result.exit_code == 1, result.output
    assert "model.pt: cannot benchmark '.pt' files" in result.output
    assert invoke("bench", tmp_path / "missing.onnx").exit_code == 2


def _write(path, report):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))
    return path


def _scaled(report, factor):
    new = copy.deepcopy(report)
    for v in new["variants"]:
        v["latency_ms"]["p95"] *= factor
    return new


@pytest.mark.parametrize(("factor", "code"), [(1.20, 3), (1.05, 0)])
def test_compare_exit_codes(digits_run, tmp_path, factor, code):
    old = json.loads((digits_run["work"] / "report.json").read_text())
    old_path = _write(tmp_path / "old" / "report.json", old)
    new_path = _write(tmp_path / "new" / "report.json", _scaled(old, factor))
    result = invoke("compare", old_path, new_path, "--max-p95-regression", "0.10")
    assert result.exit_code == code, result.output
    assert f"{(factor - 1) * 100:+.1f}%" in result.output
    if code == 3:
        assert "gates failed" in result.output and "max_p95_regression: onnx-fp32" in result.output
    as_json = invoke("compare", old_path, new_path, "--json")
    assert as_json.exit_code == code
    doc = json.loads(as_json.stdout[: as_json.stdout.rindex("}") + 1])
    assert doc["passed"] is (code == 0)
    assert {g["variant"] for g in doc["gates"]} == {"onnx-fp32", "onnx-int8-dynamic"}


def test_compare_bad_report(tmp_path, digits_run):
    bad = _write(tmp_path / "bad" / "report.json", {"schema_version": 1})
    result = invoke("compare", bad, digits_run["work"] / "report.json")
    assert result.exit_code == 1, result.output
    assert "report.json: not a schema-1 report" in result.output


def test_report_rerenders(digits_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text((digits_run["work"] / "report.json").read_text())
    result = invoke("report", out)
    assert result.exit_code == 0, result.output
    assert (out / "report.md").read_text() == digits_run["result"]["report_md"]
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = invoke("report", empty)
    assert missing.exit_code == 1 and "report not found" in missing.output


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (("latency_ms", "p95"), "fast", "variants[1].latency_ms.p95: expected a number, got str"),
        (("latency_ms", "p95"), -5, "variants[1].latency_ms.p95: must be >= 0, got -5"),
        (("latency_ms", "p95"), float("-inf"), "latency_ms.p95: expected a finite number"),
        (("name",), 7, "variants[1].name: expected a string"),
        (("size_bytes",), [1], "variants[1].size_bytes: expected a number, got list"),
        (("accuracy",), "high", "variants[1].accuracy: expected an object, got str"),
    ],
)
def test_compare_refuses_wrong_types_naming_file_and_field(
    digits_run, tmp_path, field, value, message
):
    report = json.loads((digits_run["work"] / "report.json").read_text())
    target = report["variants"][1]
    for key in field[:-1]:
        target = target[key]
    target[field[-1]] = value
    bad = tmp_path / "new.json"
    bad.write_text(json.dumps(report))  # Python writes -Infinity: a reader must refuse it
    result = invoke("compare", digits_run["work"] / "report.json", bad)
    assert result.exit_code == 1, result.output
    assert f"{bad}: not a schema-1 report" in result.output and message in result.output
    assert "unexpected" not in result.output


def test_compare_json_is_strict(digits_run, tmp_path):
    report = json.loads((digits_run["work"] / "report.json").read_text())
    report["variants"][1]["latency_ms"]["p95"] = 0.0  # a ratio against 0 has no value
    zero = tmp_path / "zero.json"
    zero.write_text(json.dumps(report))
    result = invoke("compare", zero, digits_run["work"] / "report.json", "--json")
    json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"bare {c} in --json"))


def test_emit_json_never_writes_bare_nan(capsys):
    from edgecompress.cli.common import emit_json

    emit_json({"a": [float("nan"), 1.5, {"b": float("-inf")}], "p": Path("x")})
    assert json.loads(capsys.readouterr().out) == {"a": [None, 1.5, {"b": None}], "p": "x"}
