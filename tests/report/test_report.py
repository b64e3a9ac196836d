import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgecompress.errors import CompressError
from edgecompress.report import report as report_mod
from edgecompress.report.plots import pareto_front

CHROMIUM = Path("/usr/bin/chromium")


def test_digits_run_writes_the_three_reports(digits_run):
    work = digits_run["work"]
    for name in ("report.json", "report.md", "report.html"):
        assert (work / name).stat().st_size > 0, name
    on_disk = json.loads((work / "report.json").read_text())
    assert report_mod.validate_report(on_disk) == []
    assert on_disk == json.loads(json.dumps(digits_run["result"]["report"], default=str))
    assert digits_run["result"]["report_md"] == (work / "report.md").read_text()


def test_report_json_contents(digits_run, bench_onnx):
    report = digits_run["result"]["report"]
    assert report["schema_version"] == 1
    assert [v["name"] for v in report["variants"]] == [
        "torch-fp32",
        "onnx-fp32",
        "onnx-int8-dynamic",
    ]
    m = report["machine"]
    assert m["cores"] >= 1 and m["python"] and "onnxruntime" in m["versions"]
    assert isinstance(m["flags"], list) and m["cpu"]
    for v in report["variants"]:
        lat = v["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert set(v["latency_by_threads"]) == {"1", "2"}
        assert v["size_bytes"] > 0 and v["throughput_per_s"] > 0
        acc = v["accuracy"]
        assert acc["delta"] == pytest.approx(acc["value"] - acc["baseline"])
    torch_v, fp32, int8 = report["variants"]
    assert torch_v["role"] == "baseline" and torch_v["cost"] is None
    assert fp32["accuracy"]["value"] == pytest.approx(torch_v["accuracy"]["value"])
    assert fp32["accuracy"]["value"] >= 0.98  # the trained CNN: 0.9944 on the test split
    assert int8["size_bytes"] < fp32["size_bytes"]
    assert fp32["size_bytes"] == bench_onnx.stat().st_size


def test_report_cold_start_zip_and_cost(digits_run):
    _, fp32, int8 = digits_run["result"]["report"]["variants"]
    assert fp32["cold_start_ms"] == pytest.approx(fp32["cold_start"]["total_ms"])
    assert fp32["cold_start"]["import_ms"] > 0 and fp32["peak_rss_mib"] > 0
    z = fp32["zip"]
    assert z["zipped_bytes"] > 0 and z["unzipped_bytes"] > z["zipped_bytes"] * 0.5
    assert z["cold_start"]["breakdown"] is True and z["latency_ms"]["p95"] > 0
    assert int8["zip"] is None
    for v in (fp32, int8):
        assert v["cost"]["estimate"] is True
        table = v["cost_table"]
        assert len(table) == 10 and {r["arch"] for r in table} == {"arm64", "x86_64"}
        assert all(r["estimate"] and r["usd_per_million"] > 0.2 for r in table)
        assert v["cost"]["usd_per_million"] == min(r["usd_per_million"] for r in table)
        by_mem = [r["duration_ms"] for r in table if r["arch"] == "arm64"]
        assert by_mem[0] > by_mem[1] > by_mem[2]  # 512 < 1024 < 1769 MB: more CPU share


def test_gates_in_report(digits_run):
    gates = digits_run["result"]["gates"]
    assert {g["gate"] for g in gates} == {"max_accuracy_drop", "max_zip_mib"}
    assert all(g["passed"] for g in gates)
    assert digits_run["result"]["report"]["passed"] is True
    assert "all gates passed" in digits_run["result"]["report_md"]


def test_markdown_table(digits_run):
    md = digits_run["result"]["report_md"]
    header = next(line for line in md.splitlines() if line.startswith("| variant"))
    for col in ("format", "size", "Δ acc", "p50", "p95", "cold start", "zip", "$/1M"):
        assert col in header
    rows = [line for line in md.splitlines() if line.startswith("| onnx-")]
    assert len(rows) == 2 and all("(est.)" in r for r in rows)
    assert "estimates" in md


def test_html_has_three_embedded_pngs(digits_run, tmp_path):
    page = (digits_run["work"] / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page and "https://" not in page.replace(
        "https://aws.amazon.com/lambda/pricing/", ""
    )
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed: headless render not checked")
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2400",
        (digits_run["work"] / "report.html").as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_render_reports_from_json(digits_run, tmp_path):
    for name in ("report.json",):
        shutil.copy(digits_run["work"] / name, tmp_path / name)
    report = report_mod.load_report(tmp_path)
    paths = report_mod.render_reports(report, tmp_path)
    assert paths["report_md"].read_text() == digits_run["result"]["report_md"]
    assert paths["report_html"].read_text().count("data:image/png;base64,") == 3


def test_validate_and_load_errors(digits_run, tmp_path):
    report = json.loads((digits_run["work"] / "report.json").read_text())
    del report["variants"][1]["latency_ms"]["p95"]
    report["variants"][2]["cost"]["estimate"] = False
    problems = report_mod.validate_report(report)
    assert "variants[1].latency_ms.p95: missing" in problems
    assert "variants[2].cost.estimate: must be true" in problems
    (tmp_path / "report.json").write_text(json.dumps(report))
    with pytest.raises(CompressError, match=r"report.json: not a schema-1 report.*p95"):
        report_mod.load_report(tmp_path / "report.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CompressError, match="bad.json: not valid JSON"):
        report_mod.load_report(tmp_path / "bad.json")
    with pytest.raises(CompressError, match="refusing to write an invalid report"):
        report_mod.write_report(report, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pareto_front():
    pts = [(100, 1.0, 0.99), (50, 2.0, 0.98), (120, 1.5, 0.97), (50, 2.0, 0.99)]
    # (120, 1.5, .97) is dominated by (100, 1.0, .99); (50, 2, .98) by (50, 2, .99)
    assert sorted(pareto_front(pts)) == [0, 3]
