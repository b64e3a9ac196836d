"""Deep Compression storage for all-MiniLM-L6-v2 int8-token on Lambda: weight sharing per
output channel (codebook GPTQ at export, compressors/codebook_gptq.py) and per embedding row,
coded storage ("columns" / "rows" layouts, storage/rowwise.py), and the py3.12 zips for
x86_64 and arm64 against today's int8-token zips; mean cosine to the float model; cold start
with the decode inside.

    python benchmarks/deep_compression_minilm.py --model OUT/model.int8-token.onnx \
        --step 2 --embedding-step 5

(OUT from ``compress run recipes/minilm-lambda.yaml -o OUT``.) ``--levels L`` / ``--step S``
re-run the int8-token export (the recipe's settings: torchscript, unfused, 128 calibration
samples, 8 outlier channels) with every MatMul weight column rounded by GPTQ onto its own L
k-means int8 levels, or onto the int8 multiples of S; the export takes 10-20 minutes on a
loaded 2-core machine and is cached in --work. ``--embedding-levels`` / ``--embedding-step``
snap the word-embedding rows the same way (no GPTQ: rows are independent).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import bench_helpers as sc

from edgecompress.awslambda.bundle import build_lambda_zip, measure_cold_start
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.awslambda.target import interpreter_for
from edgecompress.compressors.codebook_gptq import share_table_rows
from edgecompress.data import load_sentences
from edgecompress.loaders import resolve_path
from edgecompress.model import TaskKind, TaskSpec
from edgecompress.storage.encode import encode_onnx

TASK = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
DECODE = "import decoder, json, time; t=time.perf_counter(); decoder.load_files('{s}', '{w}'); " \
    "print(json.dumps({{**decoder.LAST, 'total_ms': (time.perf_counter()-t)*1e3}}))"  # fmt: skip
EXPORT_CONFIG = {"exporter": "torchscript", "fuse_transformer": False, "calibration_samples": 128,
                 "token_outliers": 8, "tolerance": {"min_cosine": 0.5}}  # fmt: skip
EXPORT = """import sys
from edgecompress.cli import main
sys.argv = ["compress", "-q", "export", "onnx", {model!r}, "--quantize", "int8-token",
            "--config", {config!r}, "-o", {out!r}, "--force"]
main()
"""


def export_codebook(levels: int, step: int | None, work: Path) -> Path:
    """The int8-token export with codebook GPTQ (OnnxConfig.token_sharing): k-means
    ``levels`` per column, or the uniform grid of int8 multiples of ``step`` (cached in
    ``work``)."""
    out = work / (f"export-s{step}" if step else f"export-l{levels}")
    path = out / "model.int8-token.onnx"
    if not path.is_file():
        model = str(resolve_path(sc.MINILM_REF))
        sharing = {"weight_step": step} if step else {"weight_levels": levels}
        config = json.dumps(EXPORT_CONFIG | {"token_sharing": sharing})
        code = EXPORT.format(model=model, out=str(out), config=config)
        subprocess.run([sys.executable, "-c", code], check=True)
    return path


def quality(path: Path, feeds, reference) -> dict:
    emb = sc.embed_all(sc.ort_run(sc.ort_session(path, threads=2)), feeds)
    return sc.embedding_quality(reference, emb)


def coded(path: Path) -> dict:
    encoded = encode_onnx(path)
    summary = encoded.summary()
    summary["coded_bytes"] = summary["skeleton_bytes"] + summary["weights_bytes"]
    return summary


def zips(model: Path, bundle, storage: str, out: Path) -> dict:
    sizes = {}
    for arch in ("x86_64", "arm64"):
        options = LambdaTarget(arch=arch, python="3.12", storage=storage, self_check=False)
        built = build_lambda_zip(model, bundle.io, TASK, out / f"{storage}-{arch}", options,
                                 tokenizer_dir=bundle.tokenizer_dir)  # fmt: skip
        sizes[arch] = {"zipped": built.zipped_bytes, "unzipped": built.unzipped_bytes,
                       "path": str(built.path), "model": built.breakdown.get("model")}  # fmt: skip
    return sizes


def decode_time(zip_path: Path, runs: int = 3) -> list[dict] | None:
    python = interpreter_for("x86_64", "3.12")
    if python is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        zipfile.ZipFile(zip_path).extractall(tmp)
        code = DECODE.format(s="model.skeleton.onnx", w="model.ecw")
        runs_out = []
        for _ in range(runs):
            done = subprocess.run(
                [python, "-c", code], cwd=tmp, capture_output=True, text=True, check=True
            )
            runs_out.append(json.loads(done.stdout))
        return runs_out


def cold_starts(zips_by_name: dict[str, Path], runs: int) -> dict:
    """Cold start of each zip (fresh awslambdaric processes), the zips interleaved run by run
    so that they see the same background load; median per field and every sample."""
    samples: dict[str, list] = {k: [] for k in zips_by_name}
    for _ in range(runs):
        for name, path in zips_by_name.items():
            samples[name] += measure_cold_start(path, runs=1)["samples"]
    return {
        name: {**{f: statistics.median(x[f] for x in got) for f in got[0]}, "samples": got}
        for name, got in samples.items()
    }


def candidate(args) -> Path:
    """The shared-weights model: codebook GPTQ export, then embedding rows snapped."""
    shared = args.levels or args.step
    path = export_codebook(args.levels, args.step, args.work) if shared else args.model
    if args.embedding_levels or args.embedding_step:
        dst = args.work / f"{path.parent.name}-e{args.embedding_levels}-s{args.embedding_step}.onnx"
        share_table_rows(path, dst, args.embedding_levels, step=args.embedding_step)
        path = dst
    return path


def cached(work: Path, key: str, compute):
    """``compute()``, remembered in work/cache.json under ``key`` (zips and cold starts of
    the same model are not rebuilt when another candidate is measured)."""
    store = work / "cache.json"
    cache = json.loads(store.read_text()) if store.is_file() else {}
    if key not in cache:
        cache[key] = compute()
        store.write_text(json.dumps(cache, indent=1, default=str))
    return cache[key]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True, help="int8-token MiniLM ONNX")
    parser.add_argument("--levels", type=int, default=0, help="k-means int8 levels per column")
    parser.add_argument("--step", type=int, default=2, help="uniform int8 grid step (0: none)")
    parser.add_argument("--embedding-levels", type=int, default=0, help="k-means levels per row")
    parser.add_argument("--embedding-step", type=int, default=5, help="uniform grid step")
    parser.add_argument("--work", type=Path, default=Path("/tmp/dc-minilm"))
    parser.add_argument("--out", default="benchmarks/results/deep-compression-minilm.json")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--no-zips", action="store_true", help="quality and coded sizes only")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = sc.load_text_bundle()
    feeds = sc.single_feeds(bundle, load_sentences().test.texts)
    reference = sc.embed_all(sc.torch_run(bundle.module, 2), feeds)
    shared = candidate(args)
    result = {k: getattr(args, k) for k in ("levels", "step", "embedding_levels", "embedding_step")}
    for name, path in (("int8-token", args.model), ("shared", shared)):
        result[name] = {**quality(path, feeds, reference), **cached(
            args.work, f"coded:{path}", lambda p=path: coded(p))}  # fmt: skip
        print(name, json.dumps(result[name]), flush=True)
    if not args.no_zips:
        models = {"plain": args.model, "compressed": shared}
        result["zips"] = {
            k: cached(args.work, f"zips:{k}:{m}",
                      lambda k=k, m=m: zips(m, bundle, k, args.work / f"zips-{m.stem}"))
            for k, m in models.items()
        }  # fmt: skip
        x86 = {k: Path(v["x86_64"]["path"]) for k, v in result["zips"].items()}
        if interpreter_for("x86_64", "3.12"):
            result["cold_start"] = cold_starts(x86, args.cold_runs)
        result["decode"] = decode_time(x86["compressed"])
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
