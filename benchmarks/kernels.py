"""Benchmark the quantized matmul kernels against torch fp16 matmul on a CUDA GPU.

Usage: ``python benchmarks/kernels.py``. Writes ``benchmarks/results/kernels-<gpu>.md`` with
median latency (``triton.testing.do_bench``, p20/p80 in brackets), achieved GB/s and TFLOP/s,
the roofline bound for the shape from the device's bandwidth and peak, and the speedup over
``x @ w.T`` in fp16. Without CUDA it prints a notice and exits 0 without writing anything.
"""

from __future__ import annotations

import datetime
import platform
import re
import subprocess
import sys
from pathlib import Path

import torch

MS = (1, 4, 16, 64, 256, 2048)
SHAPES = ((4096, 4096), (4096, 11008), (11008, 4096))  # (K, N)
GROUP_SIZE = 128
# name fragment -> (memory bandwidth TB/s, dense fp16/bf16 tensor TFLOP/s), vendor datasheets
KNOWN_GPUS = {
    "H200": (4.8, 989.0),
    "H100 SXM": (3.35, 989.0),
    "H100 PCIe": (2.0, 756.0),
    "H100": (3.35, 989.0),
    "A100-SXM4-80GB": (2.039, 312.0),
    "A100": (1.555, 312.0),
    "L40S": (0.864, 362.0),
    "L4": (0.3, 121.0),
    "A10": (0.6, 125.0),
    "T4": (0.32, 65.0),
}


def device_peaks(name: str) -> tuple[float, float] | None:
    """(bytes/s, FLOP/s) for a known GPU name, else None (roofline reported as unknown)."""
    for frag, (tbs, tflops) in KNOWN_GPUS.items():
        if frag.lower() in name.lower():
            return tbs * 1e12, tflops * 1e12
    return None


def _kernels():
    from edgecompress.kernels import packing
    from edgecompress.kernels.w4a16 import w4a16_matmul
    from edgecompress.kernels.w8a8 import w8a8_matmul
    from edgecompress.kernels.w8a16 import w8a16_matmul

    def make(k: int, n: int):
        w = torch.randn(n, k, device="cuda")
        q8, s8 = packing.quantize_int8_per_channel(w)
        p4, s4, _ = packing.quantize_int4(w, GROUP_SIZE, symmetric=True)
        w16 = w.half()
        return {
            "fp16 torch": (lambda x: x @ w16.T, 2 * n * k),
            "w8a16": (lambda x: w8a16_matmul(x, q8, s8), n * k + 4 * n),
            "w4a16": (
                lambda x: w4a16_matmul(x, p4, s4, None, GROUP_SIZE),
                n * k // 2 + 4 * s4.numel(),
            ),
            "w8a8": (lambda x: w8a8_matmul(x, q8, s8), n * k + 4 * n),
        }

    return make


def _row(name, fn, wbytes, x, n, peaks, base_ms):
    import triton

    m, k = x.shape
    p50, p20, p80 = triton.testing.do_bench(lambda: fn(x), quantiles=[0.5, 0.2, 0.8])
    moved = wbytes + x.numel() * 2 + m * n * 2  # weights + fp16 activations in and out
    flops = 2 * m * n * k
    gbs, tflops = moved / p50 / 1e6, flops / p50 / 1e9
    if peaks:
        bound_ms = max(moved / peaks[0], flops / peaks[1]) * 1e3
        roof = f"{bound_ms * 1e3:.1f} us ({bound_ms / p50:.0%})"
    else:
        roof = "unknown GPU"
    speedup = f"{base_ms / p50:.2f}x" if base_ms else "1.00x"
    lat = f"{p50 * 1e3:.1f} [{p20 * 1e3:.1f}, {p80 * 1e3:.1f}]"
    return f"| {m} | {k} | {n} | {name} | {lat} | {gbs:.0f} | {tflops:.1f} | {roof} | {speedup} |"


def _header(gpu: str) -> list[str]:
    import triton

    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, check=False,
        ).stdout.strip() or "unknown"  # fmt: skip
    except OSError:
        driver = "unknown"
    return [
        f"# Quantized matmul kernels on {gpu}",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"- driver {driver}, CUDA {torch.version.cuda}, torch {torch.__version__}, "
        f"triton {triton.__version__}, python {platform.python_version()}",
        f"- int4 group size {GROUP_SIZE} (symmetric); activations fp16; latency median "
        "[p20, p80] from triton.testing.do_bench; roofline = max(bytes/BW, flops/peak) and the "
        "fraction of it achieved",
        "",
        "| M | K | N | kernel | latency us | GB/s | TFLOP/s | roofline bound | vs fp16 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]


def main() -> int:
    if not torch.cuda.is_available():
        print("benchmarks/kernels.py needs a CUDA device; none found — nothing measured")
        return 0
    import triton

    gpu = torch.cuda.get_device_name()
    peaks = device_peaks(gpu)
    lines, make = _header(gpu), _kernels()
    for k, n in SHAPES:
        fns = make(k, n)
        for m in MS:
            x = torch.randn(m, k, device="cuda", dtype=torch.float16)
            base_ms = triton.testing.do_bench(lambda x=x, fns=fns: fns["fp16 torch"][0](x))
            for name, (fn, wbytes) in fns.items():
                lines.append(_row(name, fn, wbytes, x, n, peaks, base_ms))
                print(lines[-1], flush=True)
    out = Path(__file__).parent / "results" / f"kernels-{re.sub(r'[^A-Za-z0-9]+', '-', gpu)}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
