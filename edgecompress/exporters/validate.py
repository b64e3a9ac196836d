"""Every export is validated: the file run by its own runtime against the torch model.

Float variants must match the torch outputs closely (max abs diff); quantized ones are held
to the task metric on the eval split (accuracy drop for classifiers, cosine to the float
model for embedders). A breach raises ValidationError naming measured and allowed values.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgecompress.errors import ValidationError
from edgecompress.exporters.validate_lm import validate_lm
from edgecompress.metrics import cosine_rows, metric_drop, predict, score, sqnr_db
from edgecompress.model import ModelBundle, TaskKind
from edgecompress.registry import StepConfig
from edgecompress.runtimes import LayoutRunner, TorchRunner

FLOAT_SCHEMES = ("fp32",)


class Tolerances(StepConfig):
    """What an exported file may differ from the torch model, per scheme."""

    fp32_max_abs_diff: float = Field(1e-4, ge=0, description="fp32: max |torch - file| output")
    fp16_max_abs_diff: float = Field(
        5e-2, ge=0, description="fp16: max |torch - file| output (on top of the metric rule)"
    )
    max_metric_drop: float = Field(
        0.01, ge=0, description="quantized / fp16 classifiers: largest allowed metric drop"
    )
    min_cosine: float = Field(
        0.99, ge=-1, le=1, description="int8 / fp16 embedders: mean cosine to the float model"
    )
    int4_min_cosine: float = Field(
        0.95, ge=-1, le=1, description="int4 weight-only: mean cosine to the float model"
    )
    min_token_agreement: float = Field(
        0.9, ge=0, le=1, description="int8 / fp16 causal LMs: next-token agreement with torch"
    )
    int4_min_token_agreement: float = Field(
        0.75, ge=0, le=1, description="int4 causal LMs: next-token agreement with torch"
    )
    max_perplexity_ratio: float = Field(
        1.1, ge=1, description="quantized causal LMs: perplexity / torch's perplexity"
    )
    int4_max_perplexity_ratio: float = Field(
        1.5, ge=1, description="int4 causal LMs: perplexity / torch's perplexity"
    )


def allowed(tol: Tolerances, scheme: str, kind: TaskKind) -> dict:
    """The tolerance rule that applies to ``scheme`` for a ``kind`` task."""
    if scheme == "fp32":
        return {"max_abs_diff": tol.fp32_max_abs_diff}
    rule: dict = {"max_abs_diff": tol.fp16_max_abs_diff} if scheme == "fp16" else {}
    if kind == TaskKind.embedding:
        key = tol.int4_min_cosine if scheme.startswith("int4") else tol.min_cosine
        rule["min_cosine"] = key
    else:
        rule["max_metric_drop"] = tol.max_metric_drop
    return rule


def validate(
    runner, bundle: ModelBundle, ctx, scheme: str, tol: Tolerances, reference: np.ndarray
) -> dict:
    """Measure ``runner`` on the eval split; raise ValidationError on a breach.

    The allowed metric drop is checked against the torch model being exported (``reference``
    are its outputs), so earlier compression steps are not charged to the export; the delta to
    the run's original model (``ctx.baseline``) is recorded beside it for the reports."""
    if bundle.task.kind == TaskKind.generation:  # causal LMs: logits, agreement, perplexity
        return validate_lm(runner, bundle, ctx, scheme, tol, reference)
    metric, outputs = ctx.evaluate_runner(runner, bundle)
    baseline = ctx.baseline or {}
    exported = score(bundle.task.kind, reference, ctx.eval_split, ctx.reference_outputs)
    cos = cosine_rows(reference, outputs)
    result = {
        "samples": int(len(outputs)),
        "max_abs_diff": float(np.max(np.abs(reference - outputs))),
        "cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "sqnr_db": sqnr_db(reference, outputs),
        "metric": {
            "metric": metric["metric"],
            "value": metric["value"],
            "baseline": baseline.get("value"),
            "torch_value": exported["value"],
        },
        "tolerance": allowed(tol, scheme, bundle.task.kind),
    }
    if baseline.get("value") is not None:
        result["metric"]["delta"] = metric["value"] - baseline["value"]
    breaches = _breaches(result, metric["metric"])
    result["passed"] = not breaches
    if breaches:
        raise ValidationError(f"{scheme} export failed validation: {'; '.join(breaches)}")
    return result


def _breaches(result: dict, metric_name: str) -> list[str]:
    rule, out = result["tolerance"], []
    if "max_abs_diff" in rule and result["max_abs_diff"] > rule["max_abs_diff"]:
        out.append(f"max_abs_diff {result['max_abs_diff']:.3g} > allowed {rule['max_abs_diff']:g}")
    if "min_cosine" in rule and result["cosine"] < rule["min_cosine"]:
        out.append(f"mean cosine {result['cosine']:.4f} < allowed {rule['min_cosine']:g}")
    base = result["metric"]["torch_value"]
    if "max_metric_drop" in rule and base is not None:
        drop = metric_drop(metric_name, base, result["metric"]["value"])
        if drop > rule["max_metric_drop"]:
            out.append(
                f"{metric_name} drop {drop:.4f} (from the torch model's {base:.4f} to "
                f"{result['metric']['value']:.4f}) > allowed {rule['max_metric_drop']:g}"
            )
    return out


def torch_reference(module, bundle: ModelBundle, ctx) -> np.ndarray:
    """The torch module's outputs on the eval split (what every file is compared to)."""

    return predict(TorchRunner(module, bundle.io).run, bundle, ctx.eval_split)


def ensure_baseline(ctx, bundle: ModelBundle) -> None:
    if not ctx.baseline:
        ctx.set_baseline(bundle)


# LayoutRunner lives in runtimes.py; exporters that validate through it import it from here
__all__ = ["FLOAT_SCHEMES", "LayoutRunner", "Tolerances", "allowed", "validate"]
