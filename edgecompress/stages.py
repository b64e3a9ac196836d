"""The pipeline's later stages: Lambda packaging, benchmarks, reports, gates."""

from __future__ import annotations

from edgecompress.awslambda.bundle import build_lambda_zip
from edgecompress.errors import CompressError
from edgecompress.measure.suite import benchmark_and_report
from edgecompress.progress import log
from edgecompress.report.report import write_report


def choose_variant(variants, wanted: str | None):
    """The export to package: the one named, else the smallest that passed validation."""
    if wanted:
        for v in variants:
            if v.name == wanted:
                return v
        names = ", ".join(v.name for v in variants) or "none"
        raise CompressError(f"package.lambda.variant: no export named {wanted!r} (have {names})")
    passed = [v for v in variants if v.validation.get("passed", True)]
    if not passed:
        raise CompressError("package.lambda: no validated export to package (add 'export:')")
    return min(passed, key=lambda v: v.size_bytes)


def build_zips(recipe, bundle, ctx, work, variants) -> list[dict]:
    section = recipe.package.lambda_
    if section is None or not variants:
        return []

    variant = choose_variant(variants, section.variant)
    zips = []
    for arch in section.arch:
        log.info(
            "packaging %s for Lambda %s / python %s", variant.name, arch.value, section.python.value
        )
        built = build_lambda_zip(
            variant.path,
            variant.io,
            bundle.task,
            work,
            arch.value,
            section.python.value,
            tokenizer_dir=bundle.tokenizer_dir,
            memory_mb=max(section.memory_mb),
            budget_mib=section.budget_mib,
            unzipped_budget_mib=section.unzipped_budget_mib,
            timeout_s=section.timeout_s,
            self_check=section.self_check,
        )
        zips.append({**built.to_dict(), "variant": variant.name})
    return zips


def package_and_report(recipe, bundle, ctx, work, variants, original=None) -> dict:
    """Zips, then benchmarks and reports of every variant (gates are evaluated, not raised:
    the pipeline writes OUT first and exits 3 afterwards)."""
    zips = build_zips(recipe, bundle, ctx, work, variants)
    result: dict = {"lambda": zips}
    if variants:
        result.update(
            benchmark_and_report(recipe, bundle, ctx, work, variants, zips=zips, original=original)
        )
        result = relative_paths(result, work)
        write_report(result["report"], work)  # again, with paths relative to OUT
        return result
    return relative_paths(result, work)


def relative_paths(obj, work):
    """Paths inside OUT recorded relative to it: OUT is renamed at the end of the run."""
    prefix = str(work).rstrip("/") + "/"
    if isinstance(obj, dict):
        return {k: relative_paths(v, work) for k, v in obj.items()}
    if isinstance(obj, list):
        return [relative_paths(v, work) for v in obj]
    if isinstance(obj, str) and obj.startswith(prefix):
        return obj[len(prefix) :]
    return obj
