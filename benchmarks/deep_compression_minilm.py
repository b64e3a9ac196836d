"""Deep Compression storage for all-MiniLM-L6-v2 int8-token on Lambda: k-means over the int8
weight values (2**bits levels per tensor), coded storage, and the py3.12 zips for x86_64 and
arm64 against today's int8-token zips; mean cosine to the float model; cold start with decode.

    python benchmarks/deep_compression_minilm.py --model OUT/model.int8-token.onnx

(OUT from ``compress run recipes/minilm-lambda.yaml -o OUT``; the export takes minutes.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import zipfile
from pathlib import Path

import bench_helpers as sc

from edgecompress.awslambda.bundle import build_lambda_zip, measure_cold_start
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.awslambda.target import interpreter_for
from edgecompress.compressors.cluster import cluster_int8_onnx
from edgecompress.data import load_sentences
from edgecompress.model import TaskKind, TaskSpec

TASK = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
DECODE = "import decoder, json, time; t=time.perf_counter(); decoder.load_files('{s}', '{w}'); " \
    "print(json.dumps({{**decoder.LAST, 'total_ms': (time.perf_counter()-t)*1e3}}))"  # fmt: skip


def quality(path: Path, feeds, reference) -> dict:
    emb = sc.embed_all(sc.ort_run(sc.ort_session(path, threads=2)), feeds)
    return sc.embedding_quality(reference, emb)


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True, help="int8-token MiniLM ONNX")
    parser.add_argument("--bits", type=int, nargs="*", default=[6, 5, 4])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dc-minilm"))
    parser.add_argument("--out", default="benchmarks/results/deep-compression-minilm.json")
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = sc.load_text_bundle()
    feeds = sc.single_feeds(bundle, load_sentences().test.texts)
    reference = sc.embed_all(sc.torch_run(bundle.module, 2), feeds)
    result = {"int8-token": quality(args.model, feeds, reference), "clustered": {}}
    chosen = None
    for bits in args.bits:
        dst = args.work / f"k{bits}.onnx"
        cluster_int8_onnx(args.model, dst, bits)
        result["clustered"][bits] = quality(dst, feeds, reference)
        print(bits, result["clustered"][bits], flush=True)
        if result["clustered"][bits]["mean_cos"] >= 0.999:
            chosen = bits
    result["chosen_bits"] = chosen
    result["zips"] = {"plain": zips(args.model, bundle, "plain", args.work)}
    if chosen is not None:
        result["zips"]["compressed"] = zips(
            args.work / f"k{chosen}.onnx", bundle, "compressed", args.work
        )
        x86 = {k: Path(v["x86_64"]["path"]) for k, v in result["zips"].items()}
        if interpreter_for("x86_64", "3.12"):
            result["cold_start"] = {
                k: measure_cold_start(p, runs=args.cold_runs) for k, p in x86.items()
            }
        result["decode"] = decode_time(x86["compressed"])
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
