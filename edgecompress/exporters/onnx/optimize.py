"""onnxruntime graph optimisations, and the transformer optimizer's fusions for BERT-likes."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

FUSED_OPS = (
    "Attention",
    "MultiHeadAttention",
    "EmbedLayerNormalization",
    "SkipLayerNormalization",
    "LayerNormalization",
    "FastGelu",
    "Gelu",
    "BiasGelu",
)
BERT_LIKE = {"bert", "roberta", "distilbert", "xlm-roberta", "electra", "mpnet", "camembert"}


def op_counts(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def ort_optimize(src: Path, dst: Path, level: str) -> dict:
    """onnxruntime's offline graph optimisation (basic/extended) into ``dst``."""
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    return {"graph_optimization": f"onnxruntime {level}"}


def transformer_config(bundle) -> tuple[str, int, int] | None:
    """(model_type, num_heads, hidden_size) for a BERT-like HF encoder, else None."""
    inner = getattr(bundle.module, "model", None)
    config = getattr(inner, "config", None)
    if config is None or not bundle.is_text:
        return None
    model_type = getattr(config, "model_type", "")
    if model_type not in BERT_LIKE:
        return None
    return "bert", int(config.num_attention_heads), int(config.hidden_size)


def fuse_transformer(
    src: Path, dst: Path, spec: tuple[str, int, int], attention=True, embed_layer_norm=True
) -> dict:
    """The transformer optimizer's fusions (Attention, SkipLayerNorm, Gelu ...) into ``dst``.

    ``attention=False`` keeps the Q/K/V MatMuls apart (int4 MatMulNBits can then quantize
    them; a fused Attention node holds its weights as one float input).
    ``embed_layer_norm=False`` keeps the embedding Gathers apart likewise (an
    EmbedLayerNormalization node holds the word-embedding table as a float input).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model_type, heads, hidden = spec
    options = FusionOptions(model_type)
    options.enable_attention = attention
    options.enable_embed_layer_norm = embed_layer_norm
    with _quiet_logs():
        model = optimize_model(
            str(src),
            model_type=model_type,
            num_heads=heads,
            hidden_size=hidden,
            optimization_options=options,
            opt_level=0,
        )
    model.save_model_to_file(str(dst))
    counts = op_counts(dst)
    return {
        "transformer_optimizer": {
            "model_type": model_type,
            "num_heads": heads,
            "hidden_size": hidden,
            "attention_fusion": attention,
            "embed_layer_norm_fusion": embed_layer_norm,
        },
        "fused_ops": {op: counts[op] for op in FUSED_OPS if counts.get(op)},
    }


class _quiet_logs:
    """The optimizer logs every skipped pattern at INFO/WARNING; keep stderr readable."""

    def __enter__(self):
        self._loggers = [
            logging.getLogger(n) for n in ("onnxruntime", "fusion_base", "onnx_model", "optimizer")
        ]
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        for lg, level in zip(self._loggers, self._levels, strict=True):
            lg.setLevel(level)


def optimize(src: Path, dst: Path, bundle, level: str, fuse: bool, attention=True) -> dict:
    """Fusions for transformers, else ORT's graph optimisations; ``level`` none copies."""

    spec = transformer_config(bundle) if fuse else None
    if spec is not None:
        return fuse_transformer(src, dst, spec, attention)
    if level == "none":
        shutil.copyfile(src, dst)
        return {"graph_optimization": "none"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dst = Path(tmp) / "opt.onnx"
        details = ort_optimize(src, tmp_dst, level)
        shutil.copyfile(tmp_dst, dst)
    return details
