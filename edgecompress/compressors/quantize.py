"""Quantization: record a QuantSpec (exporters realise it natively) and apply the torch
realisation, with a per-layer sensitivity report and an optional accuracy budget.

Torch realisations: int8-weight-only / int4-weight-only / int8-dynamic replace nn.Linear by
``edgecompress.kernels.QuantLinear`` (Conv layers stay float in torch); int8-static is simulated
with fake-quant (calibrated activation ranges, per-channel int8 weights) on Conv and Linear;
fp16 rounds weights to half precision (compute stays float32, IO float32) and exporters store
fp16 natively.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from edgecompress import kernels, quantspec
from edgecompress.compressors.common import (
    metric_stats,
    prunable_types,
    replace_submodule,
    size_bytes,
    to_torch,
)
from edgecompress.compressors.quantize_static import apply_static
from edgecompress.compressors.sensitivity import report
from edgecompress.data import calibration_batches
from edgecompress.errors import CompressorError
from edgecompress.metrics import metric_drop
from edgecompress.quantspec import CalibrationMethod, QuantScheme, QuantSpec
from edgecompress.registry import StepConfig, register_compressor

BUDGET_ORDER = (
    QuantScheme.int4_weight_only,
    QuantScheme.int8_static,
    QuantScheme.int8_dynamic,
    QuantScheme.int8_weight_only,
    QuantScheme.fp16,
)


class QuantizeConfig(StepConfig):
    """Quantize weights (and activations for int8-static); exporters realise the same spec."""

    scheme: QuantScheme = Field(QuantScheme.int8_dynamic, description="Quantization scheme.")
    group_size: int = Field(128, description="int4: weights per scale group (32, 64 or 128).")
    symmetric: bool = Field(True, description="int4: symmetric (no zero points) or asymmetric.")
    calibration_method: CalibrationMethod = Field(
        CalibrationMethod.minmax, description="int8-static: how activation ranges are chosen."
    )
    calibration_samples: int = Field(
        128, ge=1, le=100_000, description="Train-split samples used for calibration/sensitivity."
    )
    percentile: float = Field(
        99.99, gt=50.0, le=100.0, description="Percentile calibration: the clipping percentile."
    )
    keep_float: list[str] = Field(
        default_factory=list, description="fnmatch patterns of layer names kept in float."
    )
    accuracy_budget: float | None = Field(
        None, ge=0.0,
        description="Max metric drop allowed: tries schemes from most to least aggressive and "
        "falls back the most sensitive layers to float until the drop fits ('scheme' ignored).",
    )  # fmt: skip
    max_fallback_layers: int = Field(
        4, ge=0, description="Budget search: most layers kept float per scheme before moving on."
    )

    @field_validator("scheme")
    @classmethod
    def _torch_realises(cls, value: QuantScheme) -> QuantScheme:
        return quantspec.realise("torch", value)

    @field_validator("group_size")
    @classmethod
    def _group_size(cls, value: int) -> int:
        if value not in (32, 64, 128):
            raise ValueError(f"group_size must be 32, 64 or 128, not {value}")
        return value

    def spec(self, scheme: QuantScheme | None = None, keep_float=None) -> QuantSpec:
        return QuantSpec(
            scheme=scheme or self.scheme, group_size=self.group_size, symmetric=self.symmetric,
            calibration_method=self.calibration_method,
            calibration_samples=self.calibration_samples,
            keep_float=list(self.keep_float if keep_float is None else keep_float),
        )  # fmt: skip


CALIBRATION_BATCH_SIZE = 32


def torch_calibration_batches(bundle, ctx, samples: int) -> list:
    """Calibration data as lists of positional torch tensors (none when the train split is
    empty: weight-only and dynamic schemes then quantize without a sensitivity report)."""
    if len(ctx.data.train) == 0:
        return []
    feeds = calibration_batches(bundle, ctx, samples, batch_size=CALIBRATION_BATCH_SIZE)
    return [to_torch(bundle, f) for f in feeds]


def _targets(module) -> dict:
    kinds = prunable_types() + (kernels.QuantLinear,)
    return {n: m for n, m in module.named_modules() if isinstance(m, kinds)}


def _quantize_linears(module, spec: QuantSpec, kept: dict, fitted: dict) -> list[str]:
    from torch import nn

    done = []
    for name, layer in list(module.named_modules()):
        if name in kept or not isinstance(layer, prunable_types()):
            continue
        if not isinstance(layer, nn.Linear):
            kept[name] = "weight-only/dynamic schemes quantize Linear layers only in torch"
        elif (group := fitted_group_size(spec, layer.in_features)) is None:
            kept[name] = (
                f"in_features {layer.in_features} is not a multiple of any group size "
                f"<= {spec.group_size} (32 at least)"
            )
        else:
            if group != spec.group_size:
                fitted[name] = group
            q = kernels.QuantLinear.from_linear(layer, spec.scheme.value, group, spec.symmetric)
            replace_submodule(module, name, q)
            done.append(name)
    return done


def fitted_group_size(spec: QuantSpec, in_features: int) -> int | None:
    """The group size a layer gets: the spec's, or for int4 the largest of 128/64/32 not above
    it that divides ``in_features`` (None: none does, the layer stays float)."""
    if spec.scheme != QuantScheme.int4_weight_only:
        return spec.group_size
    sizes = [g for g in (128, 64, 32) if g <= spec.group_size and in_features % g == 0]
    return sizes[0] if sizes else None


def realise(bundle, spec: QuantSpec, config: QuantizeConfig, batches) -> tuple[object, dict]:
    """The torch realisation of ``spec`` on a copy of the bundle's module, plus its facts."""
    import torch

    module = bundle.clone_module().eval()
    layers = {n: m for n, m in module.named_modules() if isinstance(m, prunable_types())}
    kept = {n: "keep_float" for n in layers if spec.keeps_float(n)}
    info: dict = {}
    fitted: dict = {}
    if spec.scheme == QuantScheme.int8_static:
        done = [n for n in layers if n not in kept]
        method = spec.calibration_method
        info["ranges"] = apply_static(module, done, batches, method, config.percentile)
    elif spec.scheme == QuantScheme.fp16:
        done = [n for n in layers if n not in kept]
        with torch.no_grad():
            for name in done:
                w = layers[name].weight
                w.copy_(w.half().float())
    else:
        done = _quantize_linears(module, spec, kept, fitted)
    info.update(quantized_layers=done, float_layers=kept)
    if fitted:  # int4 layers whose width the recipe's group size does not divide
        info["group_sizes_fitted"] = fitted
    return module, info


def stored_bytes(module, spec: QuantSpec, quantized: list[str]) -> int:
    """Bytes as deployed: quantized Conv/Linear weights at spec.bits (plus one fp32 scale per
    channel or group), everything else as stored in the torch module."""
    total = size_bytes(module)
    if spec.scheme not in (QuantScheme.int8_static, QuantScheme.fp16):
        return total  # QuantLinear buffers already hold the packed weights
    for name in quantized:
        w = module.get_submodule(name).weight
        scales = 0 if spec.scheme == QuantScheme.fp16 else w.shape[0] * 4
        total += w.numel() * spec.bits // 8 + scales - w.numel() * w.element_size()
    return total


def trial(bundle, ctx, config: QuantizeConfig, spec: QuantSpec, batches, before: dict):
    """Quantize with ``spec``; (new bundle, stats) with metric, drop and sensitivity."""

    module, info = realise(bundle, spec, config, batches)
    new = bundle.replace(module=module, quant_spec=spec, float_module=bundle.module)
    after = ctx.evaluate_bundle(new)
    kinds = prunable_types()
    layers = {n: m for n, m in bundle.module.named_modules() if isinstance(m, kinds)}
    stats = {"scheme": spec.scheme.value, "quant_spec": spec.to_dict(), **info}
    stats.update(metric_stats(ctx, before, after))
    stats["metric_drop"] = metric_drop(after["metric"], before["value"], after["value"])
    stats["sensitivity"] = report(
        bundle.module, module, layers, spec, set(info["quantized_layers"]), batches
    )
    stats["size_bytes_before"] = size_bytes(bundle.module)
    stats["size_bytes_after"] = stored_bytes(module, spec, info["quantized_layers"])
    return new, stats


def _trial_row(scheme, keep: list[str], stats: dict, ok: bool) -> dict:
    return {
        "scheme": scheme.value,
        "keep_float": keep,
        "metric": stats["metric_after"],
        "drop": round(stats["metric_drop"], 6),
        "accepted": ok,
        "quantized_layers": len(stats["quantized_layers"]),
    }


def _budget_candidates(config: QuantizeConfig, first: dict):
    """keep_float lists to try for one scheme: the configured one, then + the k worst layers."""
    worst = [r["layer"] for r in first["sensitivity"] if r["quantized"]]
    k = 1
    while k <= min(config.max_fallback_layers, len(worst) - 1):
        yield list(config.keep_float) + worst[:k]
        k *= 2


def search_budget(bundle, ctx, config: QuantizeConfig, batches, before: dict):
    """The most aggressive scheme (with fewest float fallbacks) whose drop fits the budget."""
    trials = []

    def attempt(scheme, keep):
        new, stats = trial(bundle, ctx, config, config.spec(scheme, keep), batches, before)
        ok = stats["metric_drop"] <= config.accuracy_budget and bool(stats["quantized_layers"])
        trials.append(_trial_row(scheme, keep, stats, ok))
        return (new, stats) if ok else None

    for scheme in BUDGET_ORDER:
        first_new, first = trial(bundle, ctx, config, config.spec(scheme), batches, before)
        ok = first["metric_drop"] <= config.accuracy_budget and bool(first["quantized_layers"])
        trials.append(_trial_row(scheme, list(config.keep_float), first, ok))
        if ok:
            return first_new, first, trials
        for keep in _budget_candidates(config, first):
            found = attempt(scheme, keep)
            if found:
                return (*found, trials)
    lines = "; ".join(
        f"{t['scheme']} keep_float={t['keep_float']} drop={t['drop']}" for t in trials
    )
    raise CompressorError(
        f"quantize: no scheme keeps the metric drop within accuracy_budget "
        f"{config.accuracy_budget} (tried: {lines})"
    )


@register_compressor("quantize", QuantizeConfig)
def quantize(bundle, config: QuantizeConfig, ctx):
    """Quantize (int8 dynamic/static/weight-only, int4 weight-only, fp16), recording a QuantSpec."""
    if bundle.module is None:
        raise CompressorError("quantize needs a torch model (this bundle is ONNX-only)")
    if bundle.quant_spec is not None:
        raise CompressorError("quantize: the model is already quantized (one quantize step only)")
    before = ctx.evaluate_bundle(bundle)
    batches = torch_calibration_batches(bundle, ctx, config.calibration_samples)
    if config.accuracy_budget is None:
        new, stats = trial(bundle, ctx, config, config.spec(), batches, before)
        return new, stats
    new, stats, trials = search_budget(bundle, ctx, config, batches, before)
    stats.update(trials=trials, accuracy_budget=config.accuracy_budget)
    return new, stats
