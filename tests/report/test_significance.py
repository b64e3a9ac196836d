"""Significance of A/B differences: paired bootstrap (accuracy) and Mann-Whitney U (latency),
checked against scipy and hand cases; then ``compress compare`` on two real digits runs whose
recipes differ by one step (a prune)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.report import significance as sig
from edgecompress.report.compare import diff_rows

RECIPE = """\
name: {name}
model:
  factory: edgecompress.zoo:digits_cnn
  weights: package://edgecompress.zoo/digits_cnn.pt
task: {{kind: classification, data: digits}}
steps:
{steps}  - fuse: {{}}
export:
  - onnx: {{}}
bench: {{runs: 30, warmup: 3, threads: [1], cold_start_runs: 1}}
"""
PRUNE = "  - prune: {method: structured, amount: 0.5, finetune_epochs: 1}\n"


def test_mann_whitney_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    old = np.round(rng.gamma(4, 1.0, 80), 1)  # rounded: many ties
    new = np.round(rng.gamma(4, 1.0, 95) + 0.6, 1)
    ours = sig.mann_whitney(old, new)
    ref = stats.mannwhitneyu(new, old, alternative="two-sided", method="asymptotic")
    assert ours["u"] == pytest.approx(ref.statistic)
    assert ours["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours["p_value"] < 0.05 and ours["p_new_faster"] < 0.5


def test_rank_test_sees_a_shift_and_not_noise():
    rng = np.random.default_rng(2)
    base = rng.lognormal(0, 0.2, 200)
    slower = sig.latency_significance(base, base * 1.10 + rng.normal(0, 0.01, 200))
    assert slower["significant"] and slower["better"] == "old"
    assert slower["delta_ms"] == pytest.approx(0.10 * np.median(base), rel=0.2)
    same = sig.latency_significance(base, rng.permutation(base))
    assert not same["significant"] and same["p_value"] == pytest.approx(1.0)
    assert same["better"] is None and same["delta_ms"] == 0.0


def test_paired_bootstrap_interval_and_verdict():
    old = np.ones(400, dtype=int)
    old[:40] = 0  # 0.900
    new = old.copy()
    new[:30] = 1  # fixes 30 of old's 40 errors: 0.975
    out = sig.paired_bootstrap(old, new)
    assert out["delta"] == pytest.approx(0.075) and out["discordant"] == 30
    low, high = out["ci"]
    # all 30 discordant pairs favour new: the interval is binomial-like around 30/400
    assert 0.04 < low < 0.075 < high < 0.11
    assert out["significant"] and out["p_value"] == 0.0
    assert sig.paired_bootstrap(old, new) == out  # fixed seed: reproducible
    one_flip = new.copy()
    one_flip[:29] = 0
    weak = sig.paired_bootstrap(old, one_flip)  # a single fixed sample: noise
    assert weak["delta"] == pytest.approx(1 / 400) and not weak["significant"]
    assert weak["ci"][0] <= 0 <= weak["ci"][1]


def test_mse_lower_is_better_and_unpaired_samples_are_refused():
    old = {"metric": "mse", "score": "squared_error", "values": [1.0] * 50, "eval_sha256": "a"}
    new = {**old, "values": [0.5] * 25 + [0.4] * 25}
    out = sig.accuracy_significance(old, new)
    assert out["delta"] < 0 and out["significant"] and out["better"] == "new"
    other = sig.accuracy_significance(old, {**new, "eval_sha256": "b"})
    assert "different samples" in other["skipped"]
    assert "made before" in sig.accuracy_significance(None, new)["skipped"]
    with pytest.raises(ValueError, match="equal 1-d"):
        sig.paired_bootstrap(np.ones(3), np.ones(4))


def test_old_reports_without_samples_still_compare():
    old = {"variants": [{"name": "onnx-fp32", "accuracy": {"value": 0.9}}]}
    new = {"variants": [{"name": "onnx-fp32", "accuracy": {"value": 0.95}}]}
    row = diff_rows(old, new)[0]
    assert row["accuracy_change"] == pytest.approx(0.05)
    assert "skipped" in row["significance"]["accuracy"]
    assert "not tested" in sig.verdict(row["significance"])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same digits recipe run twice, the second with one more step (a pruning)."""
    root = tmp_path_factory.mktemp("ab")
    outs = []
    for name, steps in (("a", ""), ("b", PRUNE)):
        recipe = root / f"{name}.yaml"
        recipe.write_text(RECIPE.format(name=name, steps=steps))
        result = CliRunner().invoke(cli, ["run", str(recipe), "-o", str(root / name), "--json"])
        assert result.exit_code == 0, result.output
        outs.append(root / name / "report.json")
    return outs


@pytest.mark.slow
def test_compare_two_digits_recipes_reports_significance(two_runs):
    old_path, new_path = two_runs
    old, new = (json.loads(p.read_text()) for p in two_runs)
    onnx_old = next(v for v in old["variants"] if v["name"] == "onnx-fp32")
    samples = onnx_old["accuracy_samples"]
    assert samples["n"] == len(samples["values"]) and set(samples["values"]) <= {0, 1}
    assert np.mean(samples["values"]) == pytest.approx(onnx_old["accuracy"]["value"])
    assert len(onnx_old["latency_samples_ms"]) == 30

    result = CliRunner().invoke(cli, ["compare", str(old_path), str(new_path), "--json"])
    assert result.exit_code in (0, 3), result.output  # 3 only if p95 regressed > 10 %
    rows = json.loads(result.stdout)["rows"]  # a gate breach message goes to stderr
    row = next(r for r in rows if r["variant"] == "onnx-fp32")
    acc = row["significance"]["accuracy"]
    assert acc["delta"] == pytest.approx(row["accuracy_change"])
    assert acc["ci"][0] <= acc["delta"] <= acc["ci"][1] and acc["confidence"] == 0.95
    # half the channels pruned with one epoch of fine-tuning costs several points here
    assert acc["delta"] < -0.02 and acc["significant"] and acc["better"] == "old"
    assert row["significance"]["latency"]["test"] == "Mann-Whitney U"

    text = CliRunner().invoke(cli, ["compare", str(old_path), str(new_path)]).output
    assert "onnx-fp32: A (old) is better in accuracy" in text and "95% CI [" in text
    same = CliRunner().invoke(cli, ["compare", str(old_path), str(old_path)]).output
    assert "onnx-fp32: no significant accuracy difference: +0.0000" in same
