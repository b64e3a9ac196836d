"""The variants benchmarks/peers.py compares: how each is built, and how each runs."""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import bench_helpers as sc
import numpy as np

LABELS = {
    "a": "(a) torch fp32 eager",
    "b": "(b) onnxruntime fp32",
    "c": "(c) Optimum ORTQuantizer dynamic int8",
    "d": "(d) onnxruntime quantize_dynamic defaults",
    "e": "(e) torch dynamic int8 (Linear)",
    "f": "(f) TFLite dynamic range (onnx2tf)",
    "g": "(g) edgecompress int8-token (ours)",
    "h": "(h) edgecompress int8-dynamic (ours, speed-first)",
    "i": "(i) edgecompress TFLite int8-dynamic (ours, litert-torch)",
}


@dataclass
class Variant:
    key: str
    make_run: object = None  # threads -> run(feeds)
    path: Path | None = None
    size_bytes: int | None = None
    zip_bytes: int | None = None
    note: str = ""
    error: str = ""
    times: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return LABELS[self.key]

    @property
    def ok(self) -> bool:
        return self.make_run is not None and not self.error

    def runner(self, threads: int):
        return self.make_run(threads)

    def embed(self, feeds):
        return sc.embed_all(self.runner(2), feeds)


@contextlib.contextmanager
def workdir(path: Path | None):
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        yield Path(tmp)


def ort_variant(key: str, path: Path, note: str = "", pool: bool = False) -> Variant:
    def make(threads):
        run = sc.ort_run(sc.ort_session(path, threads))
        return _pooled(run) if pool else run

    return Variant(key, make, path, path.stat().st_size, note=note)


def _pooled(run):
    """Mean pooling + L2 norm in numpy over a token-level output (Optimum's export)."""

    def pooled(feeds):
        hidden = run(feeds)["out"]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        emb = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return {"out": emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)}

    return pooled


def build_a(bundle, work, ctx) -> Variant:
    folder = Path(bundle.source["path"])
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors")) or None
    return Variant(
        "a",
        lambda t: sc.torch_run(bundle.module, t),
        size_bytes=size,
        note="transformers eager attention; size: model.safetensors",
    )


def build_b(bundle, work, ctx) -> Variant:
    from edgecompress.exporters.onnx.export import export_module

    path = work / "b-fp32.onnx"
    export_module(bundle, bundle.module, path, 17, "torchscript")
    ctx["raw"] = path
    return ort_variant("b", path, "torch.onnx.export (TorchScript, opset 17); ORT_ENABLE_ALL")


def build_c(bundle, work, ctx) -> Variant:
    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    export_dir, out_dir = work / "c-export", work / "c-quant"
    main_export(
        str(bundle.source["path"]),
        output=export_dir,
        task="feature-extraction",
        local_files_only=True,
        do_validation=False,
        library_name="transformers",
    )
    flags = sc.cpu_info()["flags"]
    isa = "avx512_vnni" if flags["avx512_vnni"] else "avx512" if flags["avx512f"] else "avx2"
    config = getattr(AutoQuantizationConfig, isa)(is_static=False)
    quantizer = ORTQuantizer.from_pretrained(export_dir, file_name="model.onnx")
    path = Path(quantizer.quantize(save_dir=out_dir, quantization_config=config))
    if path.is_dir():
        path = next(path.glob("*quantized*.onnx"))
    note = (
        f"AutoQuantizationConfig.{isa}(is_static=False): per_channel={config.per_channel}, "
        f"reduce_range={config.reduce_range}; optimum main_export of the local folder; "
        "mean pooling in numpy"
    )
    return ort_variant("c", path, note, pool=True)


def build_d(bundle, work, ctx) -> Variant:
    from onnxruntime.quantization import quantize_dynamic

    path = work / "d-ort-dynamic.onnx"
    quantize_dynamic(str(ctx["raw"]), str(path))
    return ort_variant("d", path, "quantize_dynamic(model) defaults on (b)")


def build_e(bundle, work, ctx) -> Variant:
    import torch

    module = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(bundle.module), {torch.nn.Linear}, dtype=torch.qint8
    )
    path = work / "e-torch-dynamic.pt"
    torch.save(module.state_dict(), path)
    return Variant(
        "e",
        lambda t: sc.torch_run(module, t),
        size_bytes=path.stat().st_size,
        note=f"torch.ao.quantization.quantize_dynamic, engine "
        f"{torch.backends.quantized.engine}; size: saved state_dict",
    )


TFLITE_SCRIPT = """
import sys
from pathlib import Path
import onnx2tf
from edgecompress.exporters.tflite.convert import convert
src, saved, dst = (Path(a) for a in sys.argv[1:4])
onnx2tf.convert(input_onnx_file_path=str(src), output_folder_path=str(saved),
                output_signaturedefs=True, copy_onnx_input_output_names_to_tflite=True,
                non_verbose=True)
convert(saved, dst, "int8-dynamic")
"""


def build_f(bundle, work, ctx) -> Variant:
    from edgecompress.runtimes import TFLiteRunner

    path = work / "f-dynamic-range.tflite"
    cmd = [sys.executable, "-c", TFLITE_SCRIPT, str(ctx["raw"]), str(work / "f-saved"), str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=ctx["tflite_timeout"])
    except subprocess.TimeoutExpired:
        return Variant("f", error=f"onnx2tf + TFLiteConverter ran past {ctx['tflite_timeout']} s")
    if proc.returncode != 0 or not path.exists():
        return Variant("f", error=_last_error(proc.stderr + proc.stdout))
    variant = Variant(
        "f",
        lambda t: TFLiteRunner(path, threads=t, io=bundle.io).run,
        path,
        path.stat().st_size,
        note="onnx2tf -> TFLiteConverter Optimize.DEFAULT; ai_edge_litert",
    )
    try:  # a file that converts but cannot run is a failure too
        variant.runner(1)(ctx["probe"])
    except Exception as exc:  # LiteRT raises RuntimeError / ValueError
        return Variant("f", error=f"converted, but LiteRT cannot run it: {_first(str(exc))}")
    return variant


def _last_error(text: str) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    why = [
        ln
        for ln in lines
        if ln.startswith(
            (
                "ValueError",
                "Dimensions must",
                "onnx_op_name",
                "TypeError",
                "RuntimeError",
                "NotImplemented",
            )
        )
    ]
    if why:
        return "; ".join(
            dict.fromkeys(ln.replace("\x1b[31mERROR:\x1b[0m ", "")[:200] for ln in why[:3])
        )
    hits = [ln for ln in lines if "Error" in ln or "error" in ln]
    return _first((hits or lines or ["no output"])[-1])


def _first(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else "unknown"


def build_g(bundle, work, ctx) -> Variant:
    """Ours, as recipes/minilm-lambda.yaml configures the ONNX exporter: TorchScript export ->
    onnxruntime basic optimisation -> int8-token (per-token int8 activations, 8 outlier
    channels per MatMul input in float, GPTQ int8 weights, int8 embedding rows), calibrated
    on 128 train sentences (edgecompress/exporters/onnx/token_int8.py)."""
    from edgecompress.data import load_sentences
    from edgecompress.exporters.onnx import quantize as oq
    from edgecompress.exporters.onnx.token_int8 import quantize_token_int8

    path = work / "model.int8-token.onnx"
    calib = sc.single_feeds(bundle, load_sentences().train.texts[:128])
    details = quantize_token_int8(_basic(ctx, work), path, calib)["int8_token"]
    oq.compact_names(path)
    note = (
        f"int8-token: {details['matmuls']} MatMuls in {details['groups']} groups, "
        f"{details['outlier_channels']} float outlier channels, {details['weights']} weights, "
        f"{details['scheme']} graph"
    )
    variant = ort_variant("g", path, note)
    if not ctx["no_zip"]:
        variant.zip_bytes, zip_note = lambda_zip(bundle, path, work)
        variant.note += f"; {zip_note}"
    return variant


def build_h(bundle, work, ctx) -> Variant:
    """Ours, speed-first: the same basic-optimised graph -> onnxruntime dynamic int8,
    per-channel S8 weights, DefaultTensorType FLOAT (the recipe before int8-token)."""
    from edgecompress.exporters.onnx import quantize as oq

    path = work / "model.int8.onnx"
    oq.quantize_dynamic(_basic(ctx, work), path, per_channel=True, exclude=[])
    oq.compact_names(path)
    return ort_variant("h", path, "ORT basic optimisation + dynamic int8 per-channel S8 weights")


def _basic(ctx, work: Path, bundle=None) -> Path:
    """The TorchScript export after onnxruntime's basic optimisation and, as the exporter does
    (OnnxConfig.padding_mask), the padding mask's finfo.min -> -50 checked on padded train
    sentences (shared by g and h)."""
    import onnx

    from edgecompress.data import load_sentences
    from edgecompress.exporters.onnx.optimize import ort_optimize
    from edgecompress.exporters.onnx.padding_mask import soften_padding_mask
    from edgecompress.model import tokenize

    basic = work / "g-basic.onnx"
    if not basic.exists():
        ort_optimize(ctx["raw"], basic, "basic")
        bundle = bundle or sc.load_text_bundle()
        texts = load_sentences().train.texts
        check = [tokenize(bundle.tokenizer_dir, texts[i : i + 8], bundle.io, 128) for i in (0, 8)]
        model, details = soften_padding_mask(onnx.load(str(basic)), check)
        onnx.save(model, str(basic))
        print(f"g-basic.onnx: {details}", file=sys.stderr)
    return basic


def lambda_zip(bundle, path: Path, work: Path, io=None) -> tuple[int | None, str]:
    try:
        from edgecompress.awslambda.bundle import build_lambda_zip
        from edgecompress.awslambda.options import LambdaTarget
    except ImportError:
        return None, "zip: edgecompress.awslambda.bundle not available"
    try:
        built = build_lambda_zip(
            path,
            io or bundle.io,
            bundle.task,
            work / f"lambda-{path.stem}",
            LambdaTarget(arch="arm64", python="3.12", self_check=False),
            tokenizer_dir=bundle.tokenizer_dir,
        )
    except Exception as exc:  # pip / network / budget problems: report, do not abort
        return None, f"zip failed: {_first(str(exc))}"
    return built.zipped_bytes, (
        f"zip: {built.path.name} (arm64, py3.12, not self-checked "
        f"on x86), unzipped {built.unzipped_bytes / 2**20:.1f} MiB"
    )


def build_i(bundle, work, ctx) -> Variant:
    """Ours, TFLite: the tflite exporter's litert-torch backend (torch.export at [1, 128],
    ai-edge-quantizer dynamic-range int8), validated on the test split like every export;
    run by ai-edge-litert one padded row at a time (so b1-real costs what b1-L128 costs)."""
    from edgecompress.context import RunContext
    from edgecompress.data import load_sentences
    from edgecompress.exporters.tflite.exporter import TFLiteConfig, export_tflite
    from edgecompress.runtimes import RowRunner, TFLiteRunner

    config = TFLiteConfig(backend="litert-torch", quantize=["int8-dynamic"])
    run_ctx = RunContext(load_sentences(), work)
    (made,) = export_tflite(bundle, config, run_ctx, work / "i-tflite")
    shapes = {s.name: s.shape for s in made.io.inputs}
    val = made.validation
    variant = Variant(
        "i",
        lambda t: RowRunner(TFLiteRunner(made.path, threads=t, io=made.io), shapes).run,
        made.path,
        made.size_bytes,
        note=f"{made.details['converter']} + {made.details['quantization']}; exporter "
        f"validation cosine {val['cosine']:.4f} (min {val['min_cosine']:.4f})",
    )
    if not ctx["no_zip"]:
        variant.zip_bytes, zip_note = lambda_zip(bundle, made.path, work, made.io)
        variant.note += f"; {zip_note}"
    return variant


BUILDERS = {
    "a": build_a,
    "b": build_b,
    "c": build_c,
    "d": build_d,
    "e": build_e,
    "f": build_f,
    "g": build_g,
    "h": build_h,
    "i": build_i,
}


def build_all(bundle, work: Path, acc_feeds: list[dict], args) -> list[Variant]:
    """Every variant; a builder that fails leaves a Variant with its error (b must build)."""
    ctx = {"tflite_timeout": args.tflite_timeout, "no_zip": args.no_zip, "probe": acc_feeds[0]}
    skip = set(args.skip.split(",")) - {"a", "b"}
    variants = []
    for key, builder in BUILDERS.items():
        if key in skip:
            variants.append(Variant(key, error="skipped (--skip)"))
            continue
        print(f"building {LABELS[key]} ...", file=sys.stderr, flush=True)
        try:
            variants.append(builder(bundle, work, ctx))
        except Exception as exc:  # a peer's tool failing is a result, reported in the table
            if key in ("a", "b"):
                raise
            traceback.print_exc()
            variants.append(Variant(key, error=f"{type(exc).__name__}: {_first(str(exc))}"))
    return variants
