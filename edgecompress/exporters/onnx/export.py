"""torch -> ONNX: the dynamo exporter first, the TorchScript exporter as a fallback.

Unsupported ops are reported by name with the module that calls them; metadata the exporter
attaches to every node (stack traces, FX node text: ~10 % of a small model's file, and it leaks
local paths) is stripped.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

from edgecompress.errors import ExportError
from edgecompress.model import ModelBundle
from edgecompress.progress import log

EXPORTERS_ORDER = {
    "auto": ("dynamo", "torchscript"),
    "dynamo": ("dynamo",),
    "torchscript": ("torchscript",),
}
_OP_PATTERN = re.compile(r"aten(?:::|\.)([A-Za-z0-9_]+)")


def export_module(bundle: ModelBundle, module, path: Path, opset: int, exporter: str) -> dict:
    """Write ``module`` to ``path`` as ONNX; the details dict says which exporter worked."""
    order = EXPORTERS_ORDER[exporter]
    if exporter == "auto" and bundle.is_text:
        # ORT's transformer optimizer fuses Attention only on TorchScript-exported graphs
        # (measured on MiniLM-L6: 6 Attention with it, 0 with dynamo).
        order = ("torchscript", "dynamo")
    errors: dict[str, str] = {}
    for kind in order:
        try:
            _run_exporter(kind, bundle, module, path, opset)
        except Exception as exc:  # each exporter raises its own types
            errors[kind] = f"{type(exc).__name__}: {exc}"
            log.info("%s ONNX exporter failed: %s", kind, _first_line(str(exc)))
            path.unlink(missing_ok=True)
            continue
        strip_metadata(path)
        details = {"exporter": kind, "opset": opset}
        if errors:
            details["exporter_fallback_from"] = {k: _first_line(v) for k, v in errors.items()}
        return details
    raise ExportError(diagnose(module, bundle, errors))


def _run_exporter(kind: str, bundle: ModelBundle, module, path: Path, opset: int) -> None:
    import torch

    args = tuple(torch.from_numpy(bundle.example_inputs[n]) for n in bundle.io.input_names)
    common = {
        "input_names": bundle.io.input_names,
        "output_names": bundle.io.output_names,
        "opset_version": opset,
    }
    quiet = contextlib.redirect_stdout(io.StringIO())
    with warnings.catch_warnings(), quiet, torch.no_grad():
        warnings.simplefilter("ignore")
        if kind == "dynamo":
            torch.onnx.export(
                module.eval(),
                args,
                str(path),
                dynamo=True,
                external_data=False,
                dynamic_shapes=_dynamic_shapes(bundle),
                optimize=True,
                **common,
            )
        else:
            axes = bundle.io.dynamic_axes()
            if hasattr(module, "onnx_export_spec"):  # causal LMs: the KV-cached step (hf/causal.py)
                module, args, (ins, outs), axes = module.onnx_export_spec()
                common.update(input_names=ins, output_names=outs)
            torch.onnx.export(
                module.eval(),
                args,
                str(path),
                dynamo=False,
                dynamic_axes=axes,
                do_constant_folding=True,
                **common,
            )


def _dynamic_shapes(bundle: ModelBundle) -> dict:
    from torch.export import Dim

    dims: dict[str, object] = {}
    shapes = {}
    for spec in bundle.io.inputs:
        axes = {}
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, str):
                axes[axis] = dims.setdefault(dim, Dim(dim))
        shapes[spec.name] = axes
    return shapes


def strip_metadata(path: Path) -> None:
    """Drop per-node and graph metadata (stack traces, FX text) and stale value_info."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.metadata_props[:]
    onnx.save(model, str(path))


def diagnose(module, bundle: ModelBundle, errors: dict[str, str]) -> str:
    """A one-paragraph reason naming the unsupported op(s) and the module(s) calling them."""
    ops = sorted({m for text in errors.values() for m in _OP_PATTERN.findall(text)})
    located = _locate_ops(module, bundle, ops) if ops else {}
    if located:
        where = "; ".join(f"op '{op}' in module '{mod}'" for op, mod in located.items())
        return f"ONNX export failed: no ONNX translation for {where} (tried {', '.join(errors)})"
    if ops:
        return f"ONNX export failed: unsupported op(s) {', '.join(ops)} (tried {', '.join(errors)})"
    reasons = "; ".join(f"{k}: {_first_line(v)}" for k, v in errors.items())
    return f"ONNX export failed: {reasons}"


def _locate_ops(module, bundle: ModelBundle, ops: list[str]) -> dict[str, str]:
    """Map each op name to 'path (Class)' of the module that calls it, via torch.export."""
    import torch

    args = tuple(torch.from_numpy(bundle.example_inputs[n]) for n in bundle.io.input_names)
    try:
        program = torch.export.export(module.eval(), args, strict=False)
    except Exception:  # not traceable: the op names alone must do
        return {op: "?" for op in ops}
    found: dict[str, str] = {}
    for node in program.graph.nodes:
        name = getattr(node.target, "__name__", str(node.target)).split(".")[0]
        if node.op != "call_function" or name not in ops or name in found:
            continue
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        if stack:
            path, cls = stack[-1]
            cls_name = cls if isinstance(cls, str) else getattr(cls, "__qualname__", str(cls))
            found[name] = f"{path or '<root>'} ({cls_name})"
        else:
            found[name] = "<root>"
    return found or {op: "?" for op in ops}


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    for ln in lines:
        if "aten" in ln or "not supported" in ln.lower():
            return ln[:300]
    return (lines[0] if lines else "")[:300]
