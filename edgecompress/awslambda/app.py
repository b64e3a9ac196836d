"""What a serving bundle holds beside its wheels: the model file (rewritten for an older
onnxruntime where needed), handler.py, io_spec.json (IO, task, limits, pins, labels, image
preprocessing), the tokenizer, and the template modules a model needs (images.py, rows.py).
Shared by the AWS Lambda zip and the Google Cloud Functions / Cloud Run folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgecompress import __version__
from edgecompress.awslambda import fixed_rows as lambda_fixed
from edgecompress.awslambda import wheels as lambda_wheels
from edgecompress.awslambda.onnx_compat import adapt_model
from edgecompress.errors import ExportError
from edgecompress.exporters.onnx import metadata as onnx_metadata
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.model import TaskKind, TaskSpec

TEMPLATES = Path(__file__).parent / "templates"
IMAGE_TEMPLATE = "edgecompress.awslambda.templates.images"  # copied beside handler.py


def add_model(model_path: Path, stage: Path, runtime: str, pins: dict) -> list[str]:
    """Copy the model as model.onnx / model.tflite; for an older onnxruntime rewrite the copy
    to what that version loads (see lambda_onnx_compat), else a clear error."""
    if runtime != "onnxruntime":
        shutil.copyfile(model_path, stage / "model.tflite")
        return []

    newest = lambda_wheels.PINS["3.12"]["onnxruntime"]
    return adapt_model(model_path, stage / "model.onnx", pins["onnxruntime"], newest)


def write_app(
    stage, model_path, io, task, runtime, tokenizer_dir, max_batch, pins, allow_non_finite=False
) -> dict:
    fixed = None
    if runtime == "litert":
        io = tflite_io(model_path, io)
        fixed = lambda_fixed.fixed_shapes(io)  # litert-torch: batch 1, fixed length
        io = lambda_fixed.serving_io(io, fixed) if fixed else io
    kind = task.kind.value if isinstance(task.kind, TaskKind) else str(task.kind)
    spec = {
        "runtime": runtime,
        "model_file": "model.onnx" if runtime == "onnxruntime" else "model.tflite",
        "task": kind,
        "max_batch": max_batch,
        "max_body_bytes": 6 * 1024 * 1024,
        "allow_non_finite": allow_non_finite,
        "versions": pins,
        **io.to_dict(),
    }
    if tokenizer_dir is not None:
        spec["text"] = _add_tokenizer(Path(tokenizer_dir), stage, task)
    if fixed:
        lambda_fixed.add(stage, spec, fixed)  # rows.py beside handler.py
    spec.update(serving_facts(model_path, stage))  # id2label; image preprocessing + images.py
    deps = ", ".join(
        ["numpy", "onnxruntime" if runtime == "onnxruntime" else "ai-edge-litert"]
        + (["tokenizers"] if tokenizer_dir is not None else [])
        + (["Pillow"] if spec.get("image") else [])
    )
    handler = (TEMPLATES / "handler.py.tmpl").read_text()
    handler = handler.replace("{{VERSION}}", __version__).replace("{{DEPS}}", deps)
    (stage / "handler.py").write_text(handler)
    (stage / "io_spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True))
    return spec


def serving_facts(model_path: Path, stage: Path) -> dict:
    """Label names and image preprocessing the exporter stamped into the ONNX file; an image
    model gets images.py (base64 PNG / JPEG requests) beside handler.py."""
    facts = onnx_metadata.read(model_path)
    if facts.get("image"):
        name = IMAGE_TEMPLATE.rsplit(".", 1)[1] + ".py"
        shutil.copyfile(TEMPLATES / name, stage / name)
    return {k: facts[k] for k in ("id2label", "image", "family") if facts.get(k)}


def write_target(stage: Path, spec: dict, target) -> dict:
    """Record the zip's target in io_spec.json (measure_cold_start picks its interpreter)."""
    spec["target"] = {"arch": target.arch, "python": target.python}
    (stage / "io_spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True))
    return spec["target"]


def _add_tokenizer(tokenizer_dir: Path, stage: Path, task: TaskSpec) -> dict:
    source = tokenizer_dir / "tokenizer.json"
    if not source.is_file():
        raise ExportError(f"lambda: {tokenizer_dir} has no tokenizer.json (needed by text models)")
    shutil.copyfile(source, stage / "tokenizer.json")
    pad_token, pad_id = _pad_token(source)
    return {
        "tokenizer_file": "tokenizer.json",
        "max_length": task.max_length,
        "pad_token": pad_token,
        "pad_id": pad_id,
    }


def _pad_token(tokenizer_json: Path) -> tuple[str, int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    for token in ("[PAD]", "<pad>", "<|pad|>"):
        if tok.token_to_id(token) is not None:
            return token, tok.token_to_id(token)
    return "[PAD]", 0


def tflite_io(model_path: Path, io: IOSpec) -> IOSpec:
    """The layout, dtypes and quantization the .tflite file really has, under io's names."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path))

    def specs(details, named):
        out = []
        for i, d in enumerate(details):
            sig = d.get("shape_signature", d["shape"])
            shape = tuple(
                "batch" if (n < 0 and j == 0) else (f"d{j}" if n < 0 else int(n))
                for j, n in enumerate(sig)
            )
            scale, zero = d["quantization"]
            name = named[i].name if i < len(named) else d["name"]
            quant = bool(scale) and d["dtype"].__name__ in ("int8", "uint8")
            out.append(
                TensorSpec(
                    name,
                    d["dtype"].__name__,
                    shape,
                    float(scale) if quant else None,
                    int(zero) if quant else None,
                )
            )
        return out

    return IOSpec(
        specs(interp.get_input_details(), io.inputs), specs(interp.get_output_details(), io.outputs)
    )
