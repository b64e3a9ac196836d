"""The pipeline's later stages: Lambda packaging, benchmarks, reports, gates."""

from __future__ import annotations

from pathlib import Path

from edgecompress.awslambda.app import tflite_io
from edgecompress.awslambda.bundle import build_lambda_zip
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.errors import CompressError, ExportError
from edgecompress.iospec import IOSpec
from edgecompress.loaders import load_onnx
from edgecompress.progress import log
from edgecompress.report.build import benchmark_and_report
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
    """One zip per ``package.lambda.arch`` of the chosen variant."""
    section = recipe.package.lambda_
    if section is None or not variants:
        return []

    variant = choose_variant(variants, section.variant)
    zips = []
    for arch in section.arch:
        options = section.for_arch(arch)
        log.info(
            "packaging %s for Lambda %s / python %s", variant.name, arch.value, section.python.value
        )
        built = build_lambda_zip(
            variant.path, variant.io, bundle.task, work, options, tokenizer_dir=bundle.tokenizer_dir
        )
        zips.append({**built.to_dict(), "variant": variant.name})
    return zips


def file_io(model: Path, task) -> IOSpec:
    """The IO spec of an exported file (.onnx, or .tflite with the layout it really has)."""
    if not model.is_file():
        raise ExportError(f"model: file not found: {model}")
    if model.suffix == ".onnx":
        return load_onnx(model, task).io
    if model.suffix == ".tflite":
        return tflite_io(model, IOSpec())
    raise ExportError(f"model: {model} must be an .onnx or .tflite file")


def package_file(
    model: Path, io: IOSpec, task, work: Path, options: LambdaTarget, tokenizer_dir=None
) -> dict:
    """One zip of an exported file into ``work``; its paths recorded relative to work."""
    built = build_lambda_zip(model, io, task, work, options, tokenizer_dir=tokenizer_dir)
    return relative_paths(built.to_dict(), work)


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
