"""Search the ONNX configuration for the compressed all-MiniLM-L6-v2 ("ours" in peers.py).

Usage: ``python benchmarks/minilm_search.py [--runs 60] [--only NAME,NAME] [--work DIR]``.
Builds each candidate from one TorchScript export (raw.onnx) and its transformer-optimizer
fusions (fused.onnx, fused-noattn.onnx), then prints one table: p50 at batch 1 / length 128 /
1 thread (interleaved with the float ONNX model, and the ratio to it), mean / min cosine to
the torch fp32 embeddings and nearest-neighbour agreement over the 514 test sentences
(each at batch 1, its own length; ``--split val`` for the 256 validation sentences, which is
how int8-token's 8 outlier channels were chosen); ``--profile`` adds each candidate's time by
op type (onnxruntime's profiler, batch 1 / length 128 / 1 thread). The ``token-*`` candidates
are edgecompress's int8-token pass (edgecompress/exporters/onnx/token_int8.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

import bench_helpers as sc  # noqa: E402
import numpy as np  # noqa: E402


def base_files(bundle, work: Path) -> dict[str, Path]:
    """raw.onnx (TorchScript export), fused.onnx and fused-noattn.onnx (ORT transformer fusions)."""
    from edgecompress.exporters.onnx.export import export_module
    from edgecompress.exporters.onnx.optimize import fuse_transformer, transformer_config

    files = {k: work / f"{k}.onnx" for k in ("raw", "fused", "fused-noattn")}
    if not files["raw"].exists():
        export_module(bundle, bundle.module, files["raw"], 17, "torchscript")
    spec = transformer_config(bundle)
    if not files["fused"].exists():
        fuse_transformer(files["raw"], files["fused"], spec)
    if not files["fused-noattn"].exists():
        fuse_transformer(files["raw"], files["fused-noattn"], spec, attention=False)
    return files


def dynamic(
    src: Path,
    dst: Path,
    per_channel=True,
    reduce_range=False,
    weight="QInt8",
    exclude=None,
    ops=None,
) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        per_channel=per_channel,
        reduce_range=reduce_range,
        weight_type=getattr(QuantType, weight),
        nodes_to_exclude=exclude or None,
        op_types_to_quantize=ops,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return dst


def nbits(src: Path, dst: Path, bits=4, block=32, level=4, exclude=None) -> Path:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(src)),
        bits=bits,
        block_size=block,
        is_symmetric=True,
        accuracy_level=level,
        nodes_to_exclude=exclude or [],
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    return dst


def static_qdq(src: Path, dst: Path, feeds: list[dict], per_channel=True) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"ActivationSymmetric": False},
    )
    return dst


def matmul_names(path: Path, op: str = "MatMul") -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == op and n.input[1] in inits]


def candidates(files: dict[str, Path], work: Path, calib: list[dict]) -> dict:
    """name -> zero-arg builder returning the candidate's ONNX path."""
    f, fn = files["fused"], files["fused-noattn"]
    w = work
    return {
        "fp32-raw": lambda: files["raw"],
        "fp32-fused": lambda: f,
        "dyn-default-raw": lambda: _ort_default(files["raw"], w / "dyn-default-raw.onnx"),
        "dyn-pc-s8": lambda: dynamic(f, w / "dyn-pc-s8.onnx"),
        "dyn-pc-s8-unfused": lambda: dynamic(files["raw"], w / "dyn-pc-s8-unfused.onnx"),
        "dyn-pt-s8": lambda: dynamic(f, w / "dyn-pt-s8.onnx", per_channel=False),
        "dyn-pc-u8": lambda: dynamic(f, w / "dyn-pc-u8.onnx", weight="QUInt8"),
        "dyn-pc-s8-rr": lambda: dynamic(f, w / "dyn-pc-s8-rr.onnx", reduce_range=True),
        "dyn-pc-s8-noattn": lambda: dynamic(fn, w / "dyn-pc-s8-noattn.onnx"),
        "dyn-pc-s8-matmulonly": lambda: dynamic(f, w / "dyn-pc-mm.onnx", ops=["MatMul"]),
        "nbits4-b32-acc4": lambda: nbits(fn, w / "nb4-b32.onnx", 4, 32, 4),
        "nbits4-b128-acc4": lambda: nbits(fn, w / "nb4-b128.onnx", 4, 128, 4),
        "nbits8-b32-acc4": lambda: nbits(fn, w / "nb8-b32.onnx", 8, 32, 4),
        "nbits8-b128-acc4": lambda: nbits(fn, w / "nb8-b128.onnx", 8, 128, 4),
        "nbits8-b32-acc4-raw": lambda: nbits(files["raw"], w / "nb8-b32-raw.onnx", 8, 32, 4),
        "nbits8-b128-acc4-raw": lambda: nbits(files["raw"], w / "nb8-b128-raw.onnx", 8, 128, 4),
        "static-qdq-pc": lambda: static_qdq(fn, w / "static-qdq.onnx", calib),
        "token-int8-fp32emb": lambda: token(files["raw"], w / "token.onnx", calib, gather=False),
        "token-int8": lambda: token(files["raw"], w / "token-embq.onnx", calib),
        "token-int8-rtn": lambda: token(files["raw"], w / "token-rtn.onnx", calib, gptq=False),
        "token-int8-k0": lambda: token(files["raw"], w / "token-k0.onnx", calib, outliers=0),
        "token-int8-k4": lambda: token(files["raw"], w / "token-k4.onnx", calib, True, outliers=4),
        "token-int8-k16": lambda: token(
            files["raw"], w / "token-k16.onnx", calib, True, outliers=16
        ),
        # dead ends (issue 20): DynamicQuantizeMatMul on row-normalised inputs, ~12 nodes per
        # group instead of ~29, yet no faster at 1 thread and less accurate (int8-token-profile.md)
        "token-fused-all": lambda: token(
            files["raw"], w / "tf-all.onnx", calib, **FUSED, per_token="all"
        ),
        "token-fused-auto": lambda: token(files["raw"], w / "tf-auto.onnx", calib, **FUSED),
        "token-fused-none": lambda: token(
            files["raw"], w / "tf-none.onnx", calib, **FUSED, per_token="none"
        ),
        # issue 20: the attention core as one MultiHeadAttention node (attention_fusion.py)
        "token-int8-mha": lambda: token(
            files["raw"], w / "token-mha.onnx", calib, attention_fusion=True
        ),
        "smooth50-dyn-pc-s8": lambda: dynamic(
            smooth(f, w / "sm50.onnx", calib, 0.5), w / "sm50-dyn.onnx"
        ),
        "smooth70-dyn-pc-s8": lambda: dynamic(
            smooth(f, w / "sm70.onnx", calib, 0.7), w / "sm70-dyn.onnx"
        ),
        "smooth30-dyn-pc-s8": lambda: dynamic(
            smooth(f, w / "sm30.onnx", calib, 0.3), w / "sm30-dyn.onnx"
        ),
    }


FUSED = {"scheme": "fused"}


def token(src: Path, dst: Path, feeds, gather=True, gptq=True, outliers=8, **kw) -> Path:
    """int8-token (edgecompress/exporters/onnx/token_int8.py) as the exporter runs it;
    ``gather`` False: the embedding tables stay float; ``kw``: scheme, per_token, tolerance."""
    from edgecompress.exporters.onnx.token_int8 import quantize_token_int8

    quantize_token_int8(
        src,
        dst,
        feeds,
        outlier_channels=outliers,
        use_gptq=gptq,
        embeddings=gather,
        **kw,
    )
    return dst


def _ort_default(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(str(src), str(dst))
    return dst


def evaluate(path: Path, acc_feeds: list[dict], reference) -> dict:
    session = sc.ort_session(path, threads=2)
    emb = sc.embed_all(sc.ort_run(session), acc_feeds)
    return sc.embedding_quality(reference, emb) | {"mib": sc.file_mib(path)}


def profile_by_op(path: Path, feeds: list[dict], runs: int, threads: int = 1) -> str:
    """onnxruntime's profiler (SessionOptions.enable_profiling) over ``runs`` calls after 3
    warmups: ms per call and nodes per call by op type, most expensive first."""
    import json
    import os
    import tempfile
    from collections import Counter

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="ort-prof-"), "p")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    for i in range(3 + runs):
        session.run(None, {k: feeds[i % len(feeds)][k] for k in wanted})
    trace = Path(session.end_profiling())
    events = [e for e in json.loads(trace.read_text()) if e.get("cat") == "Node"]
    trace.unlink()
    spent, count = Counter(), Counter()
    for e in events:
        if e["name"].endswith("_kernel_time"):
            spent[e["args"]["op_name"]] += e["dur"] / 1000 / (3 + runs)
            count[e["args"]["op_name"]] += 1 / (3 + runs)
    rows = [f"| {op} | {ms:.3f} | {count[op]:.0f} |" for op, ms in spent.most_common()]
    total = f"| **all kernels** | **{sum(spent.values()):.2f}** | {sum(count.values()):.0f} |"
    return "\n".join(["| op type | ms / call | nodes |", "|---|---:|---:|", *rows, total])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--only", default="", help="comma-separated candidate names")
    parser.add_argument("--work", type=Path, default=Path("/tmp/minilm-search"))
    parser.add_argument(
        "--split", default="test", choices=["val", "test"], help="sentences for accuracy"
    )
    parser.add_argument("--profile", action="store_true", help="op-type profile per candidate")
    parser.add_argument(
        "--mha", action="store_true", help="(c) vs (g) vs (g) + MultiHeadAttention, one run"
    )
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.mha:
        return mha_compare(args)
    from edgecompress.data import load_sentences

    bundle = sc.load_text_bundle()
    splits = load_sentences()
    texts = getattr(splits, args.split).texts
    acc_feeds = sc.single_feeds(bundle, texts)
    reference = sc.embed_all(sc.torch_run(bundle.module, 2), acc_feeds)
    files = base_files(bundle, args.work)
    calib = sc.single_feeds(bundle, splits.train.texts[:128])
    table = candidates(files, args.work, calib)
    names = [n for n in args.only.split(",") if n] or list(table)
    l128 = sc.single_feeds(bundle, texts[:32], pad_to=128)
    base = sc.ort_run(sc.ort_session(files["raw"], threads=1))
    print(
        f"{'candidate':24} {'p50':>7} {'base':>7} {'ratio':>6} {'mean':>7} {'min':>7} "
        f"{'agree':>6} {'MiB':>6} {'1-cos':>8}",
        flush=True,
    )
    for name in names:
        path = table[name]()
        quality = evaluate(path, acc_feeds, reference)
        run = sc.ort_run(sc.ort_session(path, threads=1))
        times = sc.time_interleaved({"c": run, "b": base}, l128, args.runs)
        p, b = sc.percentiles(times["c"])["p50"], sc.percentiles(times["b"])["p50"]
        print(
            f"{name:24} {p:7.2f} {b:7.2f} {p / b:6.3f} {quality['mean_cos']:7.4f} "
            f"{quality['min_cos']:7.4f} {quality['agreement']:6.3f} {quality['mib']:6.1f} "
            f"{1 - quality['mean_cos']:8.2e}",
            flush=True,
        )
        if args.profile:
            print(profile_by_op(path, l128, args.runs), flush=True)
    return 0


def mha_compare(args) -> int:
    """Issue 20: Optimum (c), int8-token as peers.py builds it (g) and (g) with the attention
    fusion, in one interleaved run: p50 at 1 and 2 threads on b1-L128 and b1-real (test
    sentences), accuracy on val and test; prints markdown tables."""
    import peers_variants as pv

    from edgecompress.data import load_sentences
    from edgecompress.exporters.onnx import quantize as oq

    bundle = sc.load_text_bundle()
    splits = load_sentences()
    ctx = {"raw": base_files(bundle, args.work)["raw"]}
    calib = sc.single_feeds(bundle, splits.train.texts[:128])
    variants = {"(c) Optimum": pv.build_c(bundle, args.work, ctx).path}
    for name, fuse in (("(g) int8-token", False), ("(g) + MHA", True)):
        path = args.work / f"g-{'mha' if fuse else 'plain'}.onnx"
        token(pv._basic(ctx, args.work), path, calib, attention_fusion=fuse)
        oq.compact_names(path)
        variants[name] = path
    pooled = {"(c) Optimum"}
    print("| split | " + " | ".join(f"{n}: mean / min cos, NN" for n in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for split in ("val", "test"):
        feeds = sc.single_feeds(bundle, getattr(splits, split).texts)
        ref = sc.embed_all(sc.torch_run(bundle.module, 2), feeds)
        cells = []
        for name, path in variants.items():
            q = sc.embedding_quality(ref, sc.embed_all(_runner(path, 2, name in pooled), feeds))
            cells.append(f"{q['mean_cos']:.5f} / {q['min_cos']:.5f}, {100 * q['agreement']:.1f} %")
        print(f"| {split} | " + " | ".join(cells) + " |", flush=True)
    texts = splits.test.texts
    sets = {"b1-L128": sc.single_feeds(bundle, texts[:32], pad_to=128)}
    sets["b1-real"] = sc.single_feeds(bundle, texts)
    print("\n| input, threads | " + " | ".join(variants) + " |\n|---|" + "---:|" * len(variants))
    for threads in (1, 2):
        runs = {n: _runner(p, threads, n in pooled) for n, p in variants.items()}
        for label, feeds in sets.items():
            times = sc.time_interleaved(runs, feeds, args.runs)
            p50 = {n: sc.percentiles(t)["p50"] for n, t in times.items()}
            base = p50["(c) Optimum"]
            cells = [f"{v:.2f} ({v / base:.3f})" for v in p50.values()]
            print(f"| {label}, {threads} | " + " | ".join(cells) + " |", flush=True)
    if args.profile:
        for name, path in variants.items():
            print(f"\n{name}\n" + profile_by_op(path, sets["b1-L128"], args.runs), flush=True)
    return 0


def _runner(path: Path, threads: int, pooled: bool):
    import peers_variants as pv

    run = sc.ort_run(sc.ort_session(path, threads))
    return pv._pooled(run) if pooled else run


def smooth(src: Path, dst: Path, feeds: list[dict], alpha: float = 0.5) -> Path:
    """SmoothQuant: scale each quantized MatMul/Attention input channel by 1/s (a Mul before
    it) and the weight's rows by s, so outlier channels stop dominating the per-tensor
    dynamic activation scale. s = max|x|^alpha / max|w|^(1-alpha), from calibration feeds."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    targets = [
        n for n in graph.node if n.op_type in ("MatMul", "Attention") and n.input[1] in inits
    ]
    acts = sorted({n.input[0] for n in targets})
    probe = onnx.load(str(src))
    probe.graph.output.extend(
        helper.make_tensor_value_info(a, onnx.TensorProto.FLOAT, None) for a in acts
    )
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = [i.name for i in session.get_inputs()]
    amax = {a: 0.0 for a in acts}
    for feed in feeds:
        outs = dict(zip(names, session.run(None, {k: feed[k] for k in wanted}), strict=True))
        for a in acts:
            x = np.abs(outs[a]).reshape(-1, outs[a].shape[-1]).max(0)
            amax[a] = np.maximum(amax[a], x)
    for k, node in enumerate(targets):
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        wmax = np.maximum(np.abs(w).max(1), 1e-5)
        s = np.clip(
            np.maximum(amax[node.input[0]], 1e-5) ** alpha / wmax ** (1 - alpha), 1e-2, 1e2
        ).astype(np.float32)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(w * s[:, None], node.input[1]))
        inv = f"smooth_inv_{k}"
        graph.initializer.append(numpy_helper.from_array(1.0 / s, inv))
        out = f"smooth_x_{k}"
        graph.node.append(helper.make_node("Mul", [node.input[0], inv], [out], f"Smooth_{k}"))
        node.input[0] = out
    _toposort(graph)
    onnx.save(model, str(dst))
    return dst


def _toposort(graph) -> None:
    import onnx  # noqa: F401

    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise RuntimeError("graph has a cycle or a missing input")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


if __name__ == "__main__":
    sys.exit(main())
