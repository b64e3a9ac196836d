"""``compress inspect``: family, task, parameters, size, ops and IO spec of a model, torch or
ONNX; label names and image preprocessing where the model records them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from edgecompress.exporters.onnx import metadata as onnx_metadata
from edgecompress.model import ModelBundle


def _torch_summary(module) -> dict:
    params = sum(p.numel() for p in module.parameters())
    size = sum(p.numel() * p.element_size() for p in module.parameters())
    size += sum(b.numel() * b.element_size() for b in module.buffers())
    leaves = Counter(type(m).__name__ for m in module.modules() if not list(m.children()))
    return {"params": params, "size_bytes": size, "ops": dict(leaves.most_common())}


def _onnx_summary(path: Path) -> dict:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    params = sum(int(np.prod(i.dims)) for i in proto.graph.initializer)
    ops = Counter(n.op_type for n in proto.graph.node)
    opsets = {o.domain or "ai.onnx": o.version for o in proto.opset_import}
    weight_bytes = sum(numpy_helper.to_array(i).nbytes for i in proto.graph.initializer)
    return {
        "params": params,
        "size_bytes": path.stat().st_size,
        "weight_bytes": int(weight_bytes),
        "ops": dict(ops.most_common()),
        "opsets": opsets,
    }


def summarize(bundle: ModelBundle) -> dict:
    """A JSON-ready description of ``bundle``."""
    if bundle.module is not None:
        body = _torch_summary(bundle.module)
        fmt = "torch"
    else:
        body = _onnx_summary(bundle.onnx_path)
        fmt = "onnx"
    facts = (
        onnx_metadata.serving_facts(bundle.extra)
        if bundle.module is not None
        else onnx_metadata.read(bundle.onnx_path)
    )
    return {
        "source": bundle.source,
        "format": fmt,
        "family": facts.get("family") or bundle.extra.get("family"),
        "architecture": bundle.extra.get("architecture"),
        **body,
        "io": bundle.io.to_dict(),
        "task": bundle.task.to_dict(),
        "labels": facts.get("id2label"),
        "preprocess": facts.get("image"),
    }


def _describe(summary: dict) -> list[str]:
    """Family, task, labels and preprocessing lines (where known)."""
    lines = []
    if summary.get("family"):
        arch = f" ({summary['architecture']})" if summary.get("architecture") else ""
        lines.append(f"family   {summary['family']}{arch}")
    task = summary["task"]
    lines.append(f"task     {task['kind']} (metric {task['metric']}, data {task['data']})")
    if summary.get("labels"):
        names = list(summary["labels"].items())
        shown = ", ".join(f"{k}={v}" for k, v in names[:10])
        lines.append(f"labels   {len(names)}: {shown}{', ...' if len(names) > 10 else ''}")
    pre = summary.get("preprocess")
    if pre:
        resize = pre.get("resize") or "none"
        crop = f", centre crop {pre['crop']}" if pre.get("crop") else ""
        norm = f", normalise mean {pre['mean']} std {pre['std']}" if pre.get("mean") else ""
        lines.append(
            f"images   {'RGB' if pre['channels'] == 3 else 'L'} -> resize {resize}{crop}, "
            f"rescale {pre.get('rescale_factor')}{norm} (from {pre['source']})"
        )
    return lines


def render(summary: dict) -> str:
    lines = [
        f"source   {summary['source'].get('kind')}: "
        f"{summary['source'].get('path') or summary['source'].get('factory')}",
        f"format   {summary['format']}",
        *_describe(summary),
        f"params   {summary['params']:,}",
        f"size     {summary['size_bytes']:,} bytes ({summary['size_bytes'] / 2**20:.2f} MiB)",
        "inputs",
    ]
    for key in ("inputs", "outputs"):
        if key == "outputs":
            lines.append("outputs")
        for t in summary["io"][key]:
            lines.append(f"  {t['name']}: {t['dtype']}[{', '.join(map(str, t['shape']))}]")
    ops = ", ".join(f"{k} x{v}" for k, v in summary["ops"].items())
    lines.append(f"ops      {ops}")
    return "\n".join(lines)
