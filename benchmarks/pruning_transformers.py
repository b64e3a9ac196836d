"""Structured pruning of Hugging Face models at amount 0.5: parameters, MACs, ONNX and reload
differences, onnxruntime latency pruned/unpruned.

    python benchmarks/pruning_transformers.py [--runs 200]

Small but not toy random-init models (built here from transformers configs; nothing is
downloaded): BERT and DistilBERT classifiers with the real 30,522-token vocabulary, a ViT, GPT-2
(50,257 tokens), a Llama with grouped-query attention, a ResNet-18-style and a ConvNeXt-style
classifier. Each is pruned with ``prune: {method: structured, amount: 0.5}``'s default targets
(L1 magnitude, round_to 8), saved with ``save_pretrained`` and reloaded with ``from_pretrained``
(max output difference), exported with edgecompress's TorchScript exporter (opset 17) and run by
onnxruntime (max difference to torch), and timed at batch 1 on one thread, pruned and unpruned
interleaved (ratios only: the machine is shared). Random weights: no accuracy is claimed here.
Writes benchmarks/results/pruning-transformers.md.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from bench_helpers import time_interleaved  # noqa: E402

from edgecompress.compressors.common import to_torch  # noqa: E402
from edgecompress.compressors.prune_channels import prune_structure  # noqa: E402
from edgecompress.compressors.prune_hf import find_hf_model  # noqa: E402
from edgecompress.compressors.targets import ChannelTargets  # noqa: E402
from edgecompress.exporters.onnx.export import export_module  # noqa: E402
from edgecompress.loaders import load_hf  # noqa: E402
from edgecompress.measure.latency import summarize_ms  # noqa: E402
from edgecompress.measure.machine import machine_info  # noqa: E402
from edgecompress.model import TaskSpec  # noqa: E402
from edgecompress.runtimes import OnnxRunner, torch_run  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROCESSOR = {"image_processor_type": "ViTImageProcessor", "do_resize": True,
             "size": {"height": 112, "width": 112}, "do_rescale": True,
             "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5] * 3,
             "image_std": [0.5] * 3}  # fmt: skip
SEQ = 64  # tokens per text input


def _configs() -> dict:
    """name -> (model class, config, kind: text | lm | image)."""
    import transformers as tf

    bert = {"vocab_size": 30522, "hidden_size": 256, "num_hidden_layers": 4,
            "num_attention_heads": 4, "intermediate_size": 1024, "num_labels": 2}  # fmt: skip
    return {
        "BERT (vocab 30,522, hidden 256, 4 layers)": (
            tf.BertForSequenceClassification, tf.BertConfig(**bert), "text"),
        "DistilBERT (vocab 30,522, dim 256, 4 layers)": (
            tf.DistilBertForSequenceClassification,
            tf.DistilBertConfig(vocab_size=30522, dim=256, n_layers=4, n_heads=4,
                                hidden_dim=1024), "text"),
        "ViT (112 px, patch 16, hidden 192, 6 layers)": (
            tf.ViTForImageClassification,
            tf.ViTConfig(image_size=112, patch_size=16, hidden_size=192, num_hidden_layers=6,
                         num_attention_heads=3, intermediate_size=768, num_labels=10), "image"),
        "GPT-2 (vocab 50,257, hidden 256, 4 layers)": (
            tf.GPT2LMHeadModel,
            tf.GPT2Config(vocab_size=50257, n_embd=256, n_layer=4, n_head=4, n_positions=256,
                          bos_token_id=0, eos_token_id=0), "lm"),
        "Llama GQA (vocab 32,000, hidden 256, 8/4 heads)": (
            tf.LlamaForCausalLM,
            tf.LlamaConfig(vocab_size=32000, hidden_size=256, intermediate_size=688,
                           num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
                           max_position_embeddings=256, tie_word_embeddings=False,
                           bos_token_id=1, eos_token_id=2), "lm"),
        "ResNet-18-style (112 px)": (
            tf.ResNetForImageClassification,
            tf.ResNetConfig(embedding_size=64, hidden_sizes=[64, 128, 256, 512],
                            depths=[2, 2, 2, 2], layer_type="basic", num_labels=10), "image"),
        "ConvNeXt-atto-style (112 px)": (
            tf.ConvNextForImageClassification,
            tf.ConvNextConfig(hidden_sizes=[40, 80, 160, 320], depths=[2, 2, 6, 2],
                              num_labels=10), "image"),
    }  # fmt: skip


def build(cls, config, kind: str, folder: Path) -> Path:
    """A loadable folder: weights, plus the tokenizer or image preprocessor the loader needs."""
    import json

    import torch

    from tests.conftest import write_wordpiece
    from tests.hf.lm_models import GPT2_SPECIALS, LLAMA_SPECIALS, build_bpe_tokenizer

    torch.manual_seed(0)
    cls(config).save_pretrained(str(folder))
    if kind == "text":
        write_wordpiece(folder)
    elif kind == "lm":
        llama = config.model_type == "llama"
        build_bpe_tokenizer(folder, LLAMA_SPECIALS if llama else GPT2_SPECIALS,
                            bos="<s>" if llama else None)  # fmt: skip
    else:
        (folder / "preprocessor_config.json").write_text(json.dumps(PROCESSOR))
    return folder


def feeds_of(bundle, kind: str) -> dict:
    """Batch-1 inputs: SEQ token ids (text, LMs) or one preprocessed image."""
    if kind == "image":
        return {k: v[:1] for k, v in bundle.example_inputs.items()}
    rng = np.random.default_rng(0)
    out = {"input_ids": rng.integers(5, 600, (1, SEQ)).astype(np.int64),
           "attention_mask": np.ones((1, SEQ), np.int64)}  # fmt: skip
    if "token_type_ids" in bundle.io.input_names:
        out["token_type_ids"] = np.zeros((1, SEQ), np.int64)
    return out


def macs(bundle, feeds: dict) -> int | None:
    """Torch-Pruning's op counter (Linear/Conv/Embedding layers; attention matmuls excluded)."""
    import torch_pruning as tp

    try:
        ops, _ = tp.utils.count_ops_and_params(bundle.module.eval(), to_torch(bundle, feeds))
        return int(ops)
    except Exception:  # the counter cannot trace every model
        return None


def reload_diff(pruned, folder: Path, feeds: dict) -> float:
    hf = find_hf_model(pruned.module)
    hf.save_pretrained(str(folder))
    wrapper = copy.deepcopy(pruned.module)
    wrapper.model = type(hf).from_pretrained(str(folder), attn_implementation="eager").eval()
    a, b = torch_run(pruned.replace(module=wrapper))(feeds), torch_run(pruned)(feeds)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def onnx_runner(bundle, path: Path, feeds: dict):
    export_module(bundle, bundle.module, path, opset=17, exporter="torchscript")
    runner = OnnxRunner(path, threads=1, io=bundle.io)
    name = bundle.io.output_names[0]
    diff = float(np.abs(runner.run(feeds)[name] - torch_run(bundle)(feeds)[name]).max())
    return runner.run, diff


def measure(name: str, spec: tuple, root: Path, runs: int) -> dict:
    cls, config, kind = spec
    folder = build(cls, config, kind, root / "model")
    bundle = load_hf(folder, TaskSpec())
    feeds = feeds_of(bundle, kind)
    module = bundle.clone_module()
    t = time.perf_counter()
    stats = prune_structure(module, to_torch(bundle, bundle.example_inputs), ChannelTargets())
    pruned = bundle.replace(module=module.eval())
    row = {"model": name, "prune_s": time.perf_counter() - t, "stats": stats,
           "params": (bundle.param_count(), pruned.param_count()),
           "macs": (macs(bundle, feeds), macs(pruned, feeds)),
           "reload_diff": reload_diff(pruned, root / "pruned", feeds)}  # fmt: skip
    run_a, _ = onnx_runner(bundle, root / "unpruned.onnx", feeds)
    run_b, row["onnx_diff"] = onnx_runner(pruned, root / "pruned.onnx", feeds)
    times = time_interleaved({"unpruned": run_a, "pruned": run_b}, [feeds], runs)
    row["p50"] = {k: summarize_ms(v)["p50"] for k, v in times.items()}
    row["mean"] = {k: summarize_ms(v)["mean"] for k, v in times.items()}
    print(name, row["params"], row["p50"], row["mean"], flush=True)
    return row


def _ratio(pair) -> str:
    a, b = pair
    if a is None or b is None:
        return "n/a"
    return f"{a:,} -> {b:,} ({b / a:.2f}x)"


def _widths(stats: dict) -> str:
    if "hidden" in stats:
        text = ", ".join(
            f"{label} {stats[key][0]}->{stats[key][1]}"
            for label, key in (("hidden", "hidden"), ("heads", "heads"),
                               ("head_dim", "head_dim"), ("MLP", "intermediate"))
        )  # fmt: skip
        return text + (f", KV heads {'->'.join(map(str, stats['kv_heads']))}"
                       if "kv_heads" in stats else "")  # fmt: skip
    return stats["hf_config"].split(":")[0].removeprefix("updated ")


def write_report(rows: list[dict], args, seconds: float) -> Path:
    from importlib.metadata import version

    m = machine_info()
    v = {**m["versions"], "transformers": version("transformers")}
    lines = [
        "# Structured pruning of Hugging Face models (`python benchmarks/pruning_transformers.py`)",
        "",
        f"Date {datetime.date.today()}, {m['cpu']} ({m['arch']}, {m['cores']} cores, shared: "
        f"compare ratios, not milliseconds), Python {m['python']}, torch {v.get('torch')}, "
        f"transformers {v.get('transformers')}, onnxruntime {v.get('onnxruntime')}. "
        f"{seconds:.0f} s in all.",
        "",
        "`prune: {method: structured, amount: 0.5}` with default targets (L1 magnitude, round_to "
        "8) on random-init models built from configs (no accuracy claimed: the weights are "
        "random). Reload: max |output| difference after save_pretrained -> from_pretrained. ONNX: "
        "max |onnxruntime - torch| (TorchScript exporter, opset 17; causal LMs with their KV "
        f"cache, empty past). Latency: onnxruntime p50, batch 1 ({SEQ} tokens or one 112x112 "
        f"image), one thread, {args.runs} runs, pruned and unpruned interleaved in blocks of 10. "
        "MACs: Torch-Pruning's counter (Linear/Conv/Embedding; attention matmuls not counted). "
        "p50 and mean are both given: on this shared machine the small pruned models' times "
        "spread widely (p50 far below the mean), so read the ratios as a range.",
        "",
        "| model | widths after | params before -> after | MACs before -> after | reload diff "
        "| ONNX diff | p50 pruned/unpruned | mean pruned/unpruned |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        p, mean = r["p50"], r["mean"]
        lines.append(
            f"| {r['model']} | {_widths(r['stats'])} | {_ratio(r['params'])} | "
            f"{_ratio(r['macs'])} | {r['reload_diff']:.1e} | {r['onnx_diff']:.1e} | "
            f"{p['pruned'] / p['unpruned']:.2f} ({p['unpruned']:.2f} -> {p['pruned']:.2f} ms) | "
            f"{mean['pruned'] / mean['unpruned']:.2f} |"
        )
    path = RESULTS / "pruning-transformers.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    start, rows = time.perf_counter(), []
    for name, spec in _configs().items():
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(name, spec, Path(tmp), args.runs))
    print(write_report(rows, args, time.perf_counter() - start))


if __name__ == "__main__":
    main()
