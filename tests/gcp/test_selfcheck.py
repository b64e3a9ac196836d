"""The self-check can fail: wrong answers are caught, and the server never outlives it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from edgecompress.awslambda import checks as lambda_checks
from edgecompress.errors import ValidationError
from edgecompress.gcp import requirements as gcp_requirements
from edgecompress.gcp.selfcheck import check_app
from edgecompress.gcp.server import AppServer

pytestmark = pytest.mark.slow


def _inputs(folder):
    spec = json.loads((folder / "io_spec.json").read_text())
    reqs = (folder / "requirements.txt").read_text()
    return spec, reqs


def test_a_wrong_reference_fails_the_check(gcf_digits, gcp_digits):
    folder = gcf_digits.path
    spec, reqs = _inputs(folder)
    feeds = lambda_checks.sample_feeds_for(spec["inputs"])
    reference = lambda_checks.host_reference(gcp_digits[0], spec, feeds, None, None)
    reference = {k: -v for k, v in reference.items()}  # other labels, other numbers
    _, wheel_dir = gcp_requirements.resolve("3.12", gcp_requirements.direct_pins("3.12", False))
    wheels = gcp_requirements.wheel_files(wheel_dir, gcf_digits.versions)
    with pytest.raises(ValidationError, match="gcp self-check failed"):
        check_app(folder, "3.12", reqs, wheels, reference, feeds, None)


def test_server_answers_400s_and_its_process_group_is_gone_after(gcf_digits):
    python = gcf_digits.self_check.get("venv")
    python = f"{python}/bin/python" if python else gcf_digits.self_check["interpreter"]
    with AppServer(gcf_digits.path, python, threads=2) as server:
        status, answer, _ = server.post_json(b'{"inputs": {"image": "seven"}}')
        assert status == 400 and answer["error"].startswith("image: expected numbers")
        body = json.dumps({"inputs": {"image": np.zeros((1, 1, 8, 8)).tolist()}}).encode()
        status, answer, _ = server.post_json(body)
        assert status == 200 and len(answer["labels"]) == 1
        pgid = server.proc.pid
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)  # gunicorn's master and workers all stopped
    assert not list(gcf_digits.path.rglob("__pycache__"))  # the bundle stays as built


def test_partial_check_when_no_interpreter_of_the_runtime(gcf_digits, gcp_digits, monkeypatch):
    from edgecompress.gcp import selfcheck

    pytest.importorskip("functions_framework")  # the host's own (the gcp extra)
    monkeypatch.setattr(selfcheck, "interpreter_for", lambda machine, python: None)
    spec, reqs = _inputs(gcf_digits.path)
    feeds = lambda_checks.sample_feeds_for(spec["inputs"])
    reference = lambda_checks.host_reference(gcp_digits[0], spec, feeds, None, None)
    result = check_app(gcf_digits.path, "3.12", reqs, [], reference, feeds, None)
    assert result["passed"] and result["mode"] == "partial"
    assert (
        result["why"].startswith("no Python 3.12 on this host")
        and "not the pinned" in (result["why"])
    )
