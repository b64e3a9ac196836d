"""One digits int8 ONNX model and one self-checked Cloud Functions bundle per session: the
venv the self-check builds (the slow part) is then cached for every other test."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecompress.loaders import load_onnx
from edgecompress.model import TaskSpec
from tests.awslambda.lambda_models import digits_int8_onnx


@pytest.fixture(scope="session")
def gcp_digits(tmp_path_factory) -> tuple[Path, object]:
    """(the trained digits CNN as int8 ONNX, its IO spec)."""
    path = digits_int8_onnx(tmp_path_factory.mktemp("gcp-digits"))
    return path, load_onnx(path, TaskSpec()).io


@pytest.fixture(scope="session")
def gcf_digits(gcp_digits, tmp_path_factory):
    """build_gcf of the digits model with its self-check (served under functions-framework)."""
    from edgecompress.gcp.bundle import build_gcf

    model, io = gcp_digits
    return build_gcf(model, io, TaskSpec(), tmp_path_factory.mktemp("gcf-out"))
