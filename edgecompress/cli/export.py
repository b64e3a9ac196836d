"""``compress export onnx|tflite MODEL [--quantize SCHEME] -o OUT``: one exporter, validated,
written atomically with a manifest.json."""

from __future__ import annotations

import json
from pathlib import Path

import click
from pydantic import ValidationError as PydanticError

from edgecompress.cli.common import (
    emit_json,
    force_option,
    handle_errors,
    json_option,
    load_model_arg,
)
from edgecompress.model import DEFAULT_METRIC, TaskKind, TaskSpec
from edgecompress.pipeline import run_export
from edgecompress.quantspec import QuantScheme, realise
from edgecompress.registry import EXPORTERS

# Every scheme but "none" (the float variant is always written); each format maps or refuses it.
SCHEMES = [s.value for s in QuantScheme if s is not QuantScheme.none]


@click.command("export")
@click.argument("fmt", metavar="onnx|tflite", type=click.Choice(["onnx", "tflite"]))
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--quantize",
    "schemes",
    multiple=True,
    type=click.Choice(SCHEMES),
    help="Also write this quantized variant (repeatable); the float one is always written. "
    "int8-token (ONNX, transformers): per-token int8 activations, float outlier channels, "
    "GPTQ int8 weights.",
)
@click.option("--data", help="Dataset for calibration and validation (default: the task's).")
@click.option(
    "--task",
    "task_kind",
    type=click.Choice(["classification", "embedding", "regression"]),
    help="Task of MODEL (default: embedding for a HF folder, else classification).",
)
@click.option("--factory", help="'pkg.module:function' when MODEL is a state_dict file.")
@click.option(
    "--config",
    "config_json",
    help="Exporter config as JSON, e.g. "
    '\'{"opset": 17, "tolerance": {"fp32_max_abs_diff": 1e-5}}\'.',
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Output folder (built atomically; an existing one is refused without --force).",
)
@force_option
@json_option
@handle_errors
def export(fmt, model, schemes, data, task_kind, factory, config_json, out, force, as_json):
    """Export MODEL to ONNX or TFLite, validate every file against the torch model, and write
    the file(s) and manifest.json into OUT (atomically).

    MODEL: a recipe .yaml, .onnx, .pt2, a Hugging Face folder, or a state_dict with --factory.
    A validation breach exits 1 with the measured and the allowed values.
    """
    config = _config(fmt, schemes, config_json)
    bundle = load_model_arg(model, factory, _task(model, task_kind, data))
    manifest = run_export(fmt, bundle, config, out, force, data, protect=[model])
    if as_json:
        emit_json(manifest)
        return
    for v in manifest["variants"]:
        val = v["validation"]
        metric = val.get("metric", {})
        click.echo(
            f"{v['name']:<22} {v['path']:<26} {v['size_bytes']:>10,} B  "
            f"max|diff| {val.get('max_abs_diff', float('nan')):.2e}  "
            f"{metric.get('metric')} {metric.get('value', float('nan')):.4f}  "
            f"{'ok' if val.get('passed') else 'FAILED'}"
        )
    click.echo(f"wrote {out}")


def _config(fmt: str, schemes: tuple[str, ...], config_json: str | None):
    entry = EXPORTERS.get(fmt)
    try:
        raw = json.loads(config_json) if config_json else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--config") from None
    if schemes:
        try:
            mapped = [realise(fmt, s).value for s in schemes]
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--quantize") from None
        raw["quantize"] = ["none", *mapped]
    try:
        return entry.config_cls.model_validate(raw)
    except PydanticError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise click.BadParameter(f"{loc}: {first['msg']}", param_hint="--config") from None


def _task(model: Path, kind: str | None, data: str | None):
    if kind is None:
        kind = "embedding" if model.is_dir() else "classification"
    task_kind = TaskKind(kind)
    default_data = "sentences" if task_kind == TaskKind.embedding else "digits"
    return TaskSpec(task_kind, data or default_data, DEFAULT_METRIC[task_kind])


COMMANDS = [export]
