"""``compress inspect``: parameters, size, ops and IO spec of a model, torch or ONNX."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

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
    return {
        "source": bundle.source,
        "format": fmt,
        **body,
        "io": bundle.io.to_dict(),
        "task": bundle.task.to_dict(),
    }


def render(summary: dict) -> str:
    lines = [
        f"source   {summary['source'].get('kind')}: "
        f"{summary['source'].get('path') or summary['source'].get('factory')}",
        f"format   {summary['format']}",
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
