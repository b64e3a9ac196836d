"""quantize on the shipped digits CNN, measured on the real digits test split."""

from __future__ import annotations

import pydantic
import pytest
from torch import nn

from edgecompress.compressors.quantize import QuantizeConfig, fitted_group_size, quantize
from edgecompress.kernels import QuantLinear
from edgecompress.quantspec import QuantScheme


def test_int8_static_loses_at_most_one_point(digits_bundle, run_ctx):
    new, stats = quantize(digits_bundle, QuantizeConfig(scheme="int8-static"), run_ctx)
    assert stats["metric_before"] - stats["metric_after"] <= 0.01, stats
    assert new.quant_spec.scheme == QuantScheme.int8_static
    assert new.float_module is digits_bundle.module
    assert set(stats["ranges"]) == {"features.0", "features.3", "features.7", "classifier.0",
                                    "classifier.3"}  # fmt: skip
    lo, hi = stats["ranges"]["features.0"]["input"]
    assert lo == 0.0 and 0.9 < hi <= 1.0  # digits pixels are in [0, 1]
    assert stats["size_bytes_after"] < 0.3 * stats["size_bytes_before"]
    assert all(r["weight_sqnr_db"] > 35 for r in stats["sensitivity"])


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_int8_static_calibration_methods(digits_bundle, run_ctx, method):
    config = QuantizeConfig(scheme="int8-static", calibration_method=method)
    _, stats = quantize(digits_bundle, config, run_ctx)
    assert stats["metric_before"] - stats["metric_after"] <= 0.01
    minmax = quantize(digits_bundle, QuantizeConfig(scheme="int8-static"), run_ctx)[1]["ranges"]
    for name, r in stats["ranges"].items():  # clipping never widens the min/max range
        assert minmax[name]["output"][1] >= r["output"][1] - 1e-6


def test_int4_group32_reports_per_layer_sqnr(digits_bundle, run_ctx):
    config = QuantizeConfig(scheme="int4-weight-only", group_size=32)
    new, stats = quantize(digits_bundle, config, run_ctx)
    assert isinstance(new.module.classifier[0], QuantLinear)
    assert stats["quantized_layers"] == ["classifier.0", "classifier.3"]
    assert set(stats["float_layers"]) == {"features.0", "features.3", "features.7"}
    rows = {r["layer"]: r for r in stats["sensitivity"]}
    for name in ("classifier.0", "classifier.3"):
        assert 15 < rows[name]["weight_sqnr_db"] < 30 and rows[name]["output_sqnr_db"] > 15
    sqnrs = [r["output_sqnr_db"] for r in stats["sensitivity"] if r["output_sqnr_db"] is not None]
    assert sqnrs == sorted(sqnrs)  # worst first
    assert stats["metric_before"] - stats["metric_after"] <= 0.02


def test_int4_fits_the_group_size_to_each_layer(digits_bundle, run_ctx):
    new, stats = quantize(digits_bundle, QuantizeConfig(scheme="int4-weight-only"), run_ctx)
    widths = {n: new.module.get_submodule(n).in_features for n in stats["quantized_layers"]}
    assert "classifier.0" in widths  # 64 inputs: group 128 does not fit, 64 does
    assert stats["group_sizes_fitted"]["classifier.0"] == 64
    assert new.module.classifier[0].group_size == 64
    assert all(widths[n] % g == 0 for n, g in stats["group_sizes_fitted"].items())


@pytest.mark.parametrize(
    ("in_features", "group_size", "fitted"),
    [(384, 128, 128), (64, 128, 64), (96, 128, 32), (96, 64, 32), (40, 128, None), (128, 32, 32)],
)
def test_fitted_group_size(in_features, group_size, fitted):
    spec = QuantizeConfig(scheme="int4-weight-only", group_size=group_size).spec()
    assert fitted_group_size(spec, in_features) == fitted


def test_int8_dynamic_and_keep_float(digits_bundle, run_ctx):
    config = QuantizeConfig(scheme="int8-dynamic", keep_float=["classifier.3"])
    new, stats = quantize(digits_bundle, config, run_ctx)
    assert isinstance(new.module.classifier[0], QuantLinear)
    assert isinstance(new.module.classifier[3], nn.Linear)
    assert new.quant_spec.keep_float == ["classifier.3"]
    assert stats["metric_before"] - stats["metric_after"] <= 0.01


def test_accuracy_budget_picks_a_scheme_and_shows_trials(digits_bundle, run_ctx):
    new, stats = quantize(digits_bundle, QuantizeConfig(accuracy_budget=0.005), run_ctx)
    trials = stats["trials"]
    assert trials[0]["scheme"] == "int4-weight-only"  # most aggressive first
    assert trials[0]["quantized_layers"] == 2  # both Linears, group size fitted to 64 inputs
    assert trials[-1]["accepted"] and sum(t["accepted"] for t in trials) == 1
    assert new.quant_spec.scheme.value == trials[-1]["scheme"] == stats["scheme"]
    assert stats["metric_drop"] <= 0.005


def test_budget_falls_back_sensitive_layers(digits_bundle, run_ctx):
    config = QuantizeConfig(accuracy_budget=0.0, max_fallback_layers=2)
    new, stats = quantize(digits_bundle, config, run_ctx)
    trials = stats["trials"]
    assert trials[0]["drop"] > 0 and not trials[0]["accepted"]  # int4 on both Linears costs
    assert [len(t["keep_float"]) for t in trials[:2]] == [0, 1]  # worst layer falls back first
    assert not any(t["accepted"] for t in trials[:-1]) and trials[-1]["accepted"]
    assert trials[-1]["drop"] == 0.0 and new.quant_spec.scheme.value == trials[-1]["scheme"]


def static_sensitivity(bundle, ctx):
    return quantize(bundle, QuantizeConfig(scheme="int8-static"), ctx)[1]["sensitivity"]


def test_bad_quantize_config():
    with pytest.raises(pydantic.ValidationError, match="group_size"):
        QuantizeConfig(group_size=48)
    with pytest.raises(pydantic.ValidationError, match="scheme"):
        QuantizeConfig(scheme="int3")
    with pytest.raises(pydantic.ValidationError, match="calibration_samples"):
        QuantizeConfig(calibration_samples="many")
