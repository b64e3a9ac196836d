"""build_cloudrun: Dockerfile + service.yaml from the options, the same app served for real."""

from __future__ import annotations

import pytest
import yaml

from edgecompress.gcp.cloudrun import build_cloudrun, cpu_limit
from edgecompress.gcp.target import CloudRunTarget
from edgecompress.model import TaskSpec

pytestmark = pytest.mark.slow


def test_cloud_run_bundle(gcp_digits, gcf_digits, tmp_path):
    model, io = gcp_digits
    options = CloudRunTarget(memory_mib=2048, cpu=2, concurrency=16, max_instances=3)
    built = build_cloudrun(model, io, TaskSpec(), tmp_path, options)
    folder = built.path
    assert folder == tmp_path / "cloudrun-python312"
    docker = (folder / "Dockerfile").read_text()
    assert docker.startswith("# Cloud Run image") and "FROM python:3.12-slim-bookworm" in docker
    assert "pip install --no-deps --only-binary=:all: -r requirements.txt && pip check" in docker
    assert "THREADS=16" in docker and "--target=predict" in docker
    service = yaml.safe_load((folder / "service.yaml").read_text())
    template = service["spec"]["template"]
    assert template["spec"]["containerConcurrency"] == 16
    limits = template["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "2", "memory": "2048Mi"}
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"] == "3"
    # the same app and pins as the function; served for real, Docker build said not run
    for name in ("handler.py", "requirements.txt", "model.onnx"):
        assert (folder / name).read_bytes() == (gcf_digits.path / name).read_bytes()
    main = (folder / "main.py").read_text().replace("for cloudrun", "for gcf")
    assert main == (gcf_digits.path / "main.py").read_text()
    check = built.self_check
    assert check["passed"] and check["burst"]["errors"] == 0
    assert check["burst"]["server_threads"] == 16
    assert any("Docker build" in item and "not built" in item for item in built.not_checked)
    assert cpu_limit(0.5) == "500m" and cpu_limit(1.0) == "1"
