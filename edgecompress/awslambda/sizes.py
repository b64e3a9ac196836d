"""Size breakdown of a Lambda zip by component, the budget check, and advice on breach."""

from __future__ import annotations

import zipfile
from pathlib import Path

from edgecompress.errors import BudgetError

MIB = 1024 * 1024
COMPONENTS = (
    "model",
    "onnxruntime",
    "litert",
    "numpy",
    "tokenizers",
    "tokenizer",
    "handler",
    "other",
)
_PREFIXES = {
    "onnxruntime": ("onnxruntime",),
    "litert": ("ai_edge_litert",),
    "numpy": ("numpy",),
    "tokenizers": ("tokenizers",),
}


def component_of(name: str, model_file: str) -> str:
    """Which component a zip member belongs to (by its top-level name)."""
    if name == model_file:
        return "model"
    if name in ("handler.py", "io_spec.json") or name.startswith("__pycache__/handler."):
        return "handler"
    if name.startswith("tokenizer"):
        top = name.split("/")[0]
        if not top.startswith("tokenizers"):
            return "tokenizer"
    top = name.split("/")[0].lower()
    for component, prefixes in _PREFIXES.items():
        if top.startswith(prefixes):  # "numpy", "numpy.libs", "numpy-2.5.5.dist-info"
            return component
    return "other"


def breakdown(zip_path: Path, model_file: str) -> tuple[dict[str, dict[str, int]], int, int]:
    """({component: {zipped, unzipped}}, zipped total, unzipped total) of a zip."""
    parts = {c: {"zipped": 0, "unzipped": 0} for c in COMPONENTS}
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            part = parts[component_of(info.filename, model_file)]
            part["zipped"] += info.compress_size
            part["unzipped"] += info.file_size
    parts = {k: v for k, v in parts.items() if v["unzipped"]}
    return parts, Path(zip_path).stat().st_size, sum(p["unzipped"] for p in parts.values())


def mib(n: float) -> str:
    return f"{n / MIB:.2f} MiB"


def check_budget(
    name: str,
    parts: dict,
    zipped: int,
    unzipped: int,
    budget_mib: float,
    unzipped_budget_mib: float,
    runtime: str,
    model_dtype_hint: str = "",
) -> None:
    """Raise BudgetError naming the biggest parts and what would fit."""
    over = []
    if zipped > budget_mib * MIB:
        over.append(f"{mib(zipped)} zipped > budget {budget_mib:g} MiB")
    if unzipped > unzipped_budget_mib * MIB:
        over.append(f"{mib(unzipped)} unzipped > budget {unzipped_budget_mib:g} MiB")
    if not over:
        return
    biggest = sorted(parts.items(), key=lambda kv: -kv[1]["zipped"])
    table = ", ".join(
        f"{k} {mib(v['zipped'])} zipped / {mib(v['unzipped'])} unzipped" for k, v in biggest[:4]
    )
    error = BudgetError(
        f"{name}: {'; '.join(over)}. Biggest parts: {table}. What would fit: "
        + "; ".join(advice(parts, zipped, unzipped, budget_mib, runtime, model_dtype_hint))
    )
    error.breakdown = parts
    error.zipped_bytes, error.unzipped_bytes = zipped, unzipped
    raise error


def advice(
    parts: dict, zipped: int, unzipped: int, budget_mib: float, runtime: str, model_hint: str
) -> list[str]:
    model = parts.get("model", {"zipped": 0, "unzipped": 0})
    deps = zipped - model["zipped"] - parts.get("handler", {"zipped": 0})["zipped"]
    tips = []
    if model_hint != "int8":
        tips.append(f"quantize to int8 (model {mib(model['zipped'])} zipped, about 4x smaller)")
    if runtime == "onnxruntime":
        tips.append(
            "export to TFLite and use the LiteRT runtime (ai-edge-litert) instead of "
            f"onnxruntime ({mib(parts.get('onnxruntime', {}).get('zipped', 0))} zipped)"
        )
    if unzipped <= 250 * MIB:
        tips.append(
            f"upload the zip via S3 (direct upload is capped at 50 MiB; the zip is "
            f"{mib(zipped)}, {mib(unzipped)} unzipped of 250 MiB)"
        )
    tips.append(
        f"move the runtime and numpy ({mib(deps)} zipped) into a Lambda layer: the "
        f"function zip would be {mib(zipped - deps)}"
    )
    tips.append("or ship a container image (up to 10 GB)")
    return tips
