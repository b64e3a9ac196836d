"""build_gcf: a Cloud Functions source folder that is served for real before it ships."""

from __future__ import annotations

import json
import re

import pytest

from edgecompress.awslambda.target import interpreter_for
from edgecompress.errors import BudgetError, ExportError
from edgecompress.gcp.bundle import build_gcf
from edgecompress.gcp.target import GcpTarget
from edgecompress.model import TaskSpec

pytestmark = pytest.mark.slow  # the first self-check builds a venv from PyPI wheels


def test_folder_holds_the_lambda_handler_behind_a_functions_framework_adapter(gcf_digits):
    folder = gcf_digits.path
    assert folder.name == "gcf-python312"
    assert {p.name for p in folder.iterdir()} == {
        ".gcloudignore", "README.md", "handler.py", "io_spec.json", "main.py", "model.onnx",
        "requirements.txt"}  # fmt: skip
    main = (folder / "main.py").read_text()
    assert "@functions_framework.http" in main and "handler.handler(_event(request), None)" in main
    spec = json.loads((folder / "io_spec.json").read_text())
    assert spec["target"] == {"platform": "gcf", "runtime": "python312", "python": "3.12"}
    readme = (folder / "README.md").read_text()
    assert "gcloud functions deploy ec-digits-int8 \\\n    --gen2" in readme
    assert "--runtime=python312" in readme and "--entry-point=predict" in readme


def test_requirements_pin_every_package_exactly(gcf_digits):
    lines = [
        line
        for line in (gcf_digits.path / "requirements.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert lines[:3] == ["functions-framework==3.10.2", "onnxruntime==1.32.0", "numpy==2.5.5"]
    assert all(re.fullmatch(r"[a-z0-9-]+==[0-9][0-9a-z.]*", line) for line in lines)
    assert {"flask", "gunicorn", "werkzeug", "protobuf"} <= {line.split("==")[0] for line in lines}
    assert gcf_digits.versions == dict(line.split("==") for line in lines)


def test_self_check_served_good_malformed_and_concurrent_requests(gcf_digits):
    check = gcf_digits.self_check
    assert check["passed"] is True
    if interpreter_for("x86_64", "3.12") is not None:
        assert check["mode"] == "full" and check["installed"] == gcf_digits.versions
    else:
        assert check["mode"] == "partial" and "not the pinned" in check["why"]
    requests = {r["request"]: r for r in check["requests"]}
    assert requests["nested lists"]["status"] == 200
    assert requests["base64 npy"]["max_abs_diff"]["logits"] <= 1e-4
    for label, word in [("wrong shape", "dims"), ("10 MB body", "too large"),
                        ("non-JSON body", "JSON"), ("NaN input (proxy)", "NaN"),
                        ("not UTF-8", "UTF-8"), ("missing key", "missing")]:  # fmt: skip
        assert requests[label]["status"] == 400 and word in requests[label]["error"]
    assert requests["GET (not POST)"]["status"] == 405
    burst = check["burst"]
    assert (burst["requests"], burst["workers"], burst["errors"]) == (50, 50, 0)
    assert check["cold_start"]["total_ms"] > check["cold_start"]["load_ms"] > 0
    assert any("deploy" in item for item in gcf_digits.not_checked)


def test_sizes_against_the_upload_limits(gcf_digits, gcp_digits):
    sizes = gcf_digits.sizes
    assert sizes["model_bytes"] == gcp_digits[0].stat().st_size
    assert 0 < sizes["compressed_bytes"] < sizes["source_bytes"] < 1024 * 1024
    assert sizes["total_uncompressed_bytes"] == sizes["source_bytes"] + sizes["modules_bytes"]
    assert sizes["modules"]["onnxruntime"] > 10 * 1024 * 1024
    assert sizes["budget"] == {
        "compressed_mib": 100.0,
        "uncompressed_mib": 500.0,
        "limits": "100 MiB compressed source upload, 500 MiB sources plus modules "
        "(Cloud Functions quotas)",
    }


def test_over_budget_refused_and_nothing_written(gcp_digits, tmp_path):
    model, io = gcp_digits
    with pytest.raises(BudgetError, match=r"sources plus modules .* > budget 50 MiB"):
        build_gcf(model, io, TaskSpec(), tmp_path / "out", GcpTarget(unzipped_budget_mib=50))
    with pytest.raises(BudgetError, match="compressed source .* > budget 0.01 MiB"):
        build_gcf(model, io, TaskSpec(), tmp_path / "out", GcpTarget(budget_mib=0.01))
    assert not (tmp_path / "out").exists()


def test_only_onnx_models(tmp_path):
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"TFL3")
    with pytest.raises(ExportError, match=r"must be an \.onnx file"):
        build_gcf(tflite, None, TaskSpec(), tmp_path / "out")
