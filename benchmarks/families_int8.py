"""Our default int8 ONNX variant per model family beside onnxruntime's and Optimum's own int8.

Usage: ``python benchmarks/families_int8.py [--runs 200] [--families vit,resnet,...]
[--train-epochs 8] [--out benchmarks/results/families-int8.md]``.

Models: the tiny random-init folders of tests/hf/conftest.py (ViT, ResNet, ConvNeXt, BERT,
DistilBERT), plus (``--train-epochs`` > 0) a small ResNet trained here on scikit-learn's digits
upscaled to 32 x 32, whose accuracy against the real labels is the one figure that means
"accuracy" (for the random models accuracy is top-1 agreement with torch fp32, and the logits'
cosine to torch is the finer signal). Variants, in one run, on the same data:
(ours) ``compress export onnx --quantize <family default>``: int8-dynamic after the
transformer fusions for transformers (ViT, BERT, DistilBERT), int8-static QOperator U8S8
per-channel calibrated on 128 train samples for convnets (ResNet, ConvNeXt);
(ort-dyn) ``onnxruntime.quantization.quantize_dynamic`` defaults on a plain torch.onnx export
(TorchScript, opset 17, no fusions: what a user hands it);
(ort-static) ``quantize_static`` defaults (QDQ, per-tensor, MinMax) on the same plain export and
the same calibration batches;
(optimum-dyn) Optimum's ``ORTQuantizer`` with ``AutoQuantizationConfig.<isa>(is_static=False)``
on Optimum's own export of the folder. p50 latency: batch 1, one thread, interleaved.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bench_helpers as sc  # noqa: E402
import numpy as np  # noqa: E402

DEFAULT_SCHEME = {
    "vit": "int8-dynamic",
    "resnet": "int8-static",
    "convnext": "int8-static",
    "bert": "int8-dynamic",
    "distilbert": "int8-dynamic",
    "resnet-digits": "int8-static",
}
OPTIMUM_TASK = {"vit": "image-classification", "bert": "text-classification"}


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed batch-1 calls per variant")
    parser.add_argument("--families", default="vit,resnet,convnext,bert,distilbert")
    parser.add_argument("--train-epochs", type=int, default=8, help="0: no trained model")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/families-int8.md")
    return parser.parse_args(argv)


def load(name: str, folder: Path):
    from edgecompress.context import RunContext
    from edgecompress.data import load_dataset
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

    bundle = load_hf(folder, TaskSpec(TaskKind.classification))
    return bundle, RunContext(load_dataset(bundle.task.data), folder)


def ours(bundle, ctx, scheme: str, work: Path) -> tuple[Path, Path]:
    """(our fp32 file, our int8 file) from the ONNX exporter, validated as the CLI does."""
    from edgecompress.exporters.onnx.exporter import OnnxConfig, export_onnx
    from edgecompress.exporters.validate import Tolerances

    tol = Tolerances(max_metric_drop=1.0, min_cosine=0.0)  # measured here, not gated
    config = OnnxConfig(quantize=["none", scheme], tolerance=tol)
    made = export_onnx(bundle, config, ctx, work)
    return made[0].path, made[1].path


def ort_dynamic(fp32: Path, work: Path) -> Path:
    from onnxruntime.quantization import quantize_dynamic

    path = work / "ort-dynamic.onnx"
    quantize_dynamic(str(fp32), str(path))
    return path


def ort_static(fp32: Path, work: Path, batches: list[dict]) -> Path:
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgecompress.exporters.calibration import make_reader

    pre, path = work / "ort-static.pre.onnx", work / "ort-static.onnx"
    try:  # the pre-processing onnxruntime recommends; BERT's graph fails its symbolic shapes
        quant_pre_process(str(fp32), str(pre))
    except Exception:
        pre = fp32
    quantize_static(str(pre), str(path), make_reader(batches))
    return path


def optimum_dynamic(name: str, folder: Path, work: Path) -> tuple[Path | None, str]:
    """Optimum's export + ORTQuantizer dynamic int8 for this CPU; (None, why) if it fails."""
    try:
        from optimum.exporters.onnx import main_export
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig

        task = OPTIMUM_TASK.get(name.split("-")[0], "image-classification")
        if name in ("distilbert",):
            task = "text-classification"
        export_dir, out_dir = work / "optimum-export", work / "optimum-quant"
        main_export(str(folder), output=export_dir, task=task, local_files_only=True,
                    do_validation=False, library_name="transformers")  # fmt: skip
        flags = sc.cpu_info()["flags"]
        isa = "avx512_vnni" if flags["avx512_vnni"] else "avx512" if flags["avx512f"] else "avx2"
        config = getattr(AutoQuantizationConfig, isa)(is_static=False)
        quantizer = ORTQuantizer.from_pretrained(export_dir, file_name="model.onnx")
        path = Path(quantizer.quantize(save_dir=out_dir, quantization_config=config))
        return (next(path.glob("*quantized*.onnx")) if path.is_dir() else path), isa
    except Exception as exc:  # record why, keep the other rows
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def feeds_of(bundle, split, limit: int | None = None) -> list[dict]:
    """Batch-1 feeds over ``split`` (the model's own preprocessing / tokenizer)."""
    split = split.take(limit)
    return [bundle.feeds(b) for b in split.batches(1)]


def evaluate(run, feeds: list[dict], labels, reference: np.ndarray) -> dict:
    logits = np.concatenate([run(f)["out"] for f in feeds])
    top1 = logits.argmax(1)
    ref = reference.argmax(1)
    cos = np.sum(logits * reference, 1) / (
        np.linalg.norm(logits, axis=1) * np.linalg.norm(reference, axis=1) + 1e-12
    )
    out = {"agreement": float((top1 == ref).mean()), "cosine": float(cos.mean())}
    if labels is not None:
        out["accuracy"] = float((top1 == labels).mean())
    return out


def sessions(paths: dict[str, Path]) -> dict:
    return {k: sc.ort_run(sc.ort_session(p, 1)) for k, p in paths.items()}


def plain_export(bundle, work: Path) -> Path:
    """What a user hands onnxruntime's quantizers: a plain torch.onnx export, no fusions."""
    from edgecompress.exporters.onnx.export import export_module

    path = work / "plain.onnx"
    export_module(bundle, bundle.module, path, 17, "torchscript")
    return path


def peers(name: str, folder: Path, bundle, batches, work: Path) -> tuple[dict, dict]:
    """(label -> file, label -> why it failed) of the peer int8 variants."""
    paths, notes = {}, {}
    plain = plain_export(bundle, work)
    for label, build in (
        ("ort quantize_dynamic", lambda: ort_dynamic(plain, work)),
        ("ort quantize_static (QDQ)", lambda: ort_static(plain, work, batches)),
    ):
        try:
            paths[label] = build()
        except Exception as exc:  # a peer that fails is a result too
            notes[label] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:150]}"
    opt, isa = optimum_dynamic(name, folder, work / "optimum")
    if opt is not None:
        paths[f"optimum {isa} dynamic"] = opt
    else:
        notes["optimum dynamic"] = isa
    return paths, notes


def bench_family(name: str, folder: Path, args, work: Path) -> list[dict]:
    bundle, ctx = load(name, folder)
    scheme = DEFAULT_SCHEME[name]
    work.mkdir(parents=True, exist_ok=True)
    fp32, int8 = ours(bundle, ctx, scheme, work / "ours")
    batches = [bundle.feeds(b) for b in ctx.data.train.take(128).batches(16)]
    paths = {"fp32 (ours)": fp32, f"ours {scheme}": int8}
    peer_paths, notes = peers(name, folder, bundle, batches, work)
    paths.update(peer_paths)
    test = ctx.data.test
    feeds = feeds_of(bundle, test, 300)
    labels = None if test.labels is None else test.labels[: len(feeds)]
    runs = sessions(paths)
    torch_ref = np.concatenate([sc.torch_run(bundle.module, 1)(f)["out"] for f in feeds])
    times = sc.time_interleaved(runs, feeds[:50], args.runs, warmup=5)
    rows = []
    for key, path in paths.items():
        quality = evaluate(runs[key], feeds, labels, torch_ref)
        p = sc.percentiles(times[key])
        rows.append({"family": name, "variant": key, "p50": p["p50"], "p95": p["p95"],
                     "bytes": path.stat().st_size, **quality})  # fmt: skip
    rows.extend({"family": name, "variant": k, "error": v} for k, v in notes.items())
    return rows


def train_resnet_digits(folder: Path, epochs: int) -> Path:
    """A small ResNet (the tests' config, ten classes) trained on digits upscaled to 32 x 32
    by its own preprocessing."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    from tests.hf.conftest import CONVNEXT_PROCESSOR, save

    torch.manual_seed(0)
    names = {i: str(i) for i in range(10)}
    config = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
                          layer_type="basic", num_labels=10, id2label=names,
                          label2id={v: k for k, v in names.items()})  # fmt: skip
    model = ResNetForImageClassification(config)
    save(model, folder, CONVNEXT_PROCESSOR)
    bundle, ctx = load("resnet-digits", folder)
    train = ctx.data.train
    x = torch.from_numpy(bundle.feeds(train)["pixel_values"])
    y = torch.from_numpy(train.labels)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            loss = torch.nn.functional.cross_entropy(model(pixel_values=x[idx]).logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return save(model.eval(), folder, CONVNEXT_PROCESSOR)


def main(argv=None) -> int:
    args = parse(argv)
    from tests.hf.conftest import BUILDERS

    started, rows = time.time(), []
    with tempfile.TemporaryDirectory(prefix="families-int8-") as tmp:
        tmp = Path(tmp)
        jobs = [(n, BUILDERS[n](tmp / n)) for n in args.families.split(",") if n]
        if args.train_epochs > 0:
            started_train = time.time()
            jobs.append(("resnet-digits", train_resnet_digits(tmp / "rd", args.train_epochs)))
            print(f"trained in {time.time() - started_train:.0f} s", file=sys.stderr)
        for name, folder in jobs:
            print(f"{name} ...", file=sys.stderr, flush=True)
            try:
                rows.extend(bench_family(name, folder, args, tmp / f"w-{name}"))
            except Exception as exc:  # one family failing keeps the others' rows
                rows.append({"family": name, "variant": "all", "error": repr(exc)[:200]})
    text = render(rows, args, time.time() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


def render(rows: list[dict], args, seconds: float) -> str:
    cpu = sc.cpu_info()
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["flags"].items())
    lines = [
        "# Default int8 per family beside onnxruntime's and Optimum's int8",
        "",
        f"Machine: {cpu['model']}, {cpu['cores']} logical cores ({flags}), shared with other "
        f"jobs; {args.runs} interleaved batch-1 calls per variant, 1 thread; {seconds:.0f} s. "
        "Command: `python benchmarks/families_int8.py`.",
        "",
        "| family | variant | p50 ms | p95 ms | size KiB | top-1 agreement | cosine | accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['family']} | {r['variant']} | failed: {r['error']} | | | | | |")
            continue
        acc = f"{r['accuracy']:.4f}" if "accuracy" in r else "-"
        lines.append(
            f"| {r['family']} | {r['variant']} | {r['p50']:.3f} | {r['p95']:.3f} | "
            f"{r['bytes'] / 1024:.1f} | {r['agreement']:.4f} | {r['cosine']:.5f} | {acc} |"
        )
    return "\n".join(lines + pareto(rows)) + "\n"


def dominated_by(row: dict, others: list[dict]) -> list[str]:
    """Int8 variants at least as fast (p50), small and accurate as ``row``, better in one."""
    key = "accuracy" if "accuracy" in row else "agreement"
    out = []
    for o in others:
        if o is row or "error" in o or o["variant"].startswith("fp32"):
            continue
        ge = o["p50"] <= row["p50"] and o["bytes"] <= row["bytes"] and o[key] >= row[key]
        gt = o["p50"] < row["p50"] or o["bytes"] < row["bytes"] or o[key] > row[key]
        if ge and gt:
            out.append(o["variant"])
    return out


def pareto(rows: list[dict]) -> list[str]:
    lines = ["", "Pareto front over (p50, size, accuracy or top-1 agreement), int8 rows only:", ""]
    for family in dict.fromkeys(r["family"] for r in rows):
        mine = [r for r in rows if r["family"] == family and r["variant"].startswith("ours")]
        if not mine or "error" in mine[0]:
            lines.append(f"- {family}: no result")
            continue
        by = dominated_by(mine[0], [r for r in rows if r["family"] == family])
        state = f"dominated by {', '.join(by)}" if by else "on the front"
        lines.append(f"- {family}: ours ({mine[0]['variant']}) {state}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
