"""Validation of an exported causal LM against the torch model it came from.

Float files: the largest |torch - file| logit over the first eval batch (every position, the
whole vocabulary) must stay within ``fp32_max_abs_diff``. Quantized files: over every real
position of the eval sentences, the file's top-1 next token must agree with torch's at least
``min_token_agreement`` of the time (``int4_min_token_agreement`` for int4) and its perplexity
may exceed torch's by at most ``max_perplexity_ratio`` (``int4_max_perplexity_ratio``).

KV-cached files (past_key_values.* inputs): the metrics above run the graph with a past of
length 0. The cached route is checked too, on the first ``CACHE_BATCH`` eval sentences: a
prefill of the first half, then one cached step per token, against the same file's cache-less
logits. fp32 / fp16: the largest difference stays within the scheme's logit limit; quantized
files (int8-dynamic scales its activations per call, so a step sees other scales than the whole
sequence): the top-1 tokens agree at least ``min_token_agreement`` of the time.
"""

from __future__ import annotations

import numpy as np

from edgecompress.errors import ValidationError
from edgecompress.exporters.onnx import kv_cache
from edgecompress.lm_metrics import NLL, lm_score
from edgecompress.model import ModelBundle
from edgecompress.runtimes import TorchRunner

FIRST_BATCH = 16
CACHE_BATCH = 4


def lm_rule(tol, scheme: str) -> dict:
    """The limits ``scheme`` is held to (``tol``: exporters.validate.Tolerances)."""
    if scheme == "fp32":
        return {"max_abs_diff": tol.fp32_max_abs_diff}
    int4 = scheme.startswith("int4")
    rule = {"max_abs_diff": tol.fp16_max_abs_diff} if scheme == "fp16" else {}
    rule["min_token_agreement"] = tol.int4_min_token_agreement if int4 else tol.min_token_agreement
    rule["max_perplexity_ratio"] = (
        tol.int4_max_perplexity_ratio if int4 else tol.max_perplexity_ratio
    )
    return rule


def logits_diff(runner, bundle: ModelBundle, ctx) -> float | None:
    """max |torch - file| over the logits of the first eval batch (None: no torch module)."""
    module = bundle.float_module or bundle.module
    if module is None:
        return None
    feeds = bundle.feeds(ctx.eval_split.take(FIRST_BATCH))
    want = next(iter(TorchRunner(module, bundle.io).run(feeds).values()))
    got = next(iter(runner.run(feeds).values()))
    real = feeds["attention_mask"] > 0
    return float(np.abs(np.asarray(want)[real] - np.asarray(got)[real]).max())


def cache_check(runner, bundle: ModelBundle, ctx) -> dict | None:
    """The cached route (prefill + single-token steps) against the file's cache-less logits
    over the real positions of a few eval sentences; None for a file without a cache."""
    session = getattr(runner, "session", None)
    if session is None or not kv_cache.past_names(session):
        return None
    feeds = bundle.feeds(ctx.eval_split.take(CACHE_BATCH))
    ids, mask = feeds["input_ids"], feeds["attention_mask"]
    prefill = max(1, ids.shape[1] // 2)
    full = np.asarray(runner.run(feeds)[bundle.io.output_names[0]])
    cached = kv_cache.cached_logits(session, ids, mask, prefill)
    real = mask > 0
    return {
        "prefill": prefill,
        "steps": int(ids.shape[1] - prefill),
        "max_abs_diff": float(np.abs(full[real] - cached[real]).max()),
        "token_agreement": float((full[real].argmax(-1) == cached[real].argmax(-1)).mean()),
    }


def validate_lm(runner, bundle: ModelBundle, ctx, scheme: str, tol, reference: np.ndarray) -> dict:
    """Measure ``runner`` on the eval sentences against ``reference`` (the torch model's
    per-position rows, lm_metrics.lm_summary); raise ValidationError on a breach."""
    metric, outputs = ctx.evaluate_runner(runner, bundle)
    vs_torch = lm_score(outputs, reference)
    diff = logits_diff(runner, bundle, ctx)
    if diff is None:
        diff = float(np.abs(outputs[:, NLL] - reference[:, NLL]).max())
    baseline = ctx.baseline or {}
    result = {
        "samples": len(ctx.eval_split),
        "positions": int(len(outputs)),
        "max_abs_diff": diff,
        "next_token_agreement": vs_torch["value"],
        "perplexity": vs_torch["perplexity"],
        "torch_perplexity": vs_torch.get("reference_perplexity"),
        "perplexity_ratio": vs_torch.get("perplexity_ratio"),
        "metric": {
            "metric": metric["metric"],
            "value": metric["value"],
            "baseline": baseline.get("value"),
            "torch_value": lm_score(reference, ctx.reference_outputs)["value"],
            "perplexity": vs_torch["perplexity"],
        },
        "tolerance": lm_rule(tol, scheme),
    }
    cache = cache_check(runner, bundle, ctx)
    if cache is not None:
        result["kv_cache"] = cache
    if baseline.get("value") is not None:
        result["metric"]["delta"] = metric["value"] - baseline["value"]
    breaches = _breaches(result)
    result["passed"] = not breaches
    if breaches:
        raise ValidationError(f"{scheme} export failed validation: {'; '.join(breaches)}")
    return result


def _breaches(result: dict) -> list[str]:
    rule, out = result["tolerance"], []
    out += _cache_breaches(result.get("kv_cache"), rule)
    if "max_abs_diff" in rule and result["max_abs_diff"] > rule["max_abs_diff"]:
        out.append(
            f"max_abs_diff of the logits {result['max_abs_diff']:.3g} > allowed "
            f"{rule['max_abs_diff']:g}"
        )
    if (
        "min_token_agreement" in rule
        and result["next_token_agreement"] < rule["min_token_agreement"]
    ):
        out.append(
            f"next-token agreement with torch {result['next_token_agreement']:.4f} < allowed "
            f"{rule['min_token_agreement']:g} ({result['positions']} positions)"
        )
    ratio = result["perplexity_ratio"]
    if (
        "max_perplexity_ratio" in rule
        and ratio is not None
        and ratio > rule["max_perplexity_ratio"]
    ):
        out.append(
            f"perplexity {result['perplexity']:.4g} is {ratio:.3f}x torch's "
            f"{result['torch_perplexity']:.4g} > allowed {rule['max_perplexity_ratio']:g}x"
        )
    return out


def _cache_breaches(cache: dict | None, rule: dict) -> list[str]:
    if cache is None:
        return []
    if "max_abs_diff" in rule and cache["max_abs_diff"] > rule["max_abs_diff"]:
        return [
            f"KV-cached logits differ from the cache-less ones by {cache['max_abs_diff']:.3g} > "
            f"allowed {rule['max_abs_diff']:g} ({cache['steps']} cached steps)"
        ]
    if "min_token_agreement" in rule and cache["token_agreement"] < rule["min_token_agreement"]:
        return [
            f"KV-cached top-1 tokens agree with the cache-less ones {cache['token_agreement']:.4f}"
            f" < allowed {rule['min_token_agreement']:g} ({cache['steps']} cached steps)"
        ]
    return []
