"""The emulated arm64 self-check: the fallback to the static check (and why), and the digits
int8 arm64 / Python 3.13 zip answering the self-check's events under qemu."""

from __future__ import annotations

import json
import zipfile

import pytest

from edgecompress.awslambda import bundle
from edgecompress.awslambda.bundle import build_lambda_zip
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.awslambda.target import Target
from edgecompress.loaders import load_onnx
from edgecompress.model import TaskSpec
from tests.awslambda.lambda_models import digits_int8_onnx
from tests.awslambda.test_emulate import emulation_or_skip

MALFORMED = ("wrong shape", "wrong dtype (npy)", "missing key", "non-JSON body", "10 MB body")


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory):
    return digits_int8_onnx(tmp_path_factory.mktemp("digits"))


def test_arm64_zip_falls_back_to_the_static_check_and_says_why(monkeypatch):
    monkeypatch.setenv("EDGECOMPRESS_EMULATION", "0")
    verified = {"elf": {"e_machine": 183}}
    none = (None, {}, None, None, None)  # model, spec, feeds, reference, tokenizer: unused
    check = bundle._check(None, Target("arm64", "3.13"), True, verified, *none, 1024)
    assert "no emulation: turned off (EDGECOMPRESS_EMULATION=0)" in check["skipped"]
    assert "wheel tags and ELF machines verified" in check["skipped"]
    assert check["verified"] is verified
    monkeypatch.delenv("EDGECOMPRESS_EMULATION")
    check = bundle._check(None, Target("arm64", "3.12"), True, verified, *none, 1024)
    assert "Debian ships no arm64 Python 3.12" in check["skipped"]
    lm_spec = {"generation": {"max_new_tokens": 64}}
    lm = bundle._check(
        None, Target("arm64", "3.13"), True, verified, None, lm_spec, *none[2:], 1024
    )
    assert "the generation self-check does not run under qemu" in lm["skipped"]


@pytest.mark.slow
def test_digits_int8_arm64_py313_zip_answers_under_emulation(digits_int8, tmp_path):
    emu = emulation_or_skip("3.13")
    io = load_onnx(digits_int8, TaskSpec()).io
    built = build_lambda_zip(
        digits_int8, io, TaskSpec(), tmp_path, LambdaTarget(arch="arm64", python="3.13")
    )
    check = built.self_check
    assert check["passed"] is True and check["interpreter"] == str(emu.interpreter)
    assert check["emulated"]["scheme"] == "int8" and check["verified"]["elf"]["e_machine"] == 183
    assert check["emulated"]["lambda_sysfs"] is emu.sysfs
    events = {e["event"]: e for e in check["events"]}
    for label in ("direct lists", "proxy base64 npy", "good after bad"):  # answered, close
        assert events[label]["kind"] == "response"
        assert events[label]["max_abs_diff"]["logits"] <= 1e-3  # measured 4e-6 vs x86
    for label in MALFORMED:
        assert events[label]["status"] == 400, label
    assert list(events)[-1] == "good after bad"
    spec = json.loads(zipfile.ZipFile(built.path).read("io_spec.json"))
    assert spec["target"] == {"arch": "arm64", "python": "3.13"}
