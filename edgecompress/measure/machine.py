"""The machine a measurement ran on: CPU model, the SIMD flags int8 / fp16 kernels depend on,
cores, OS, Python and the versions of the packages that shape the numbers.

One definition, used by report.json's ``machine`` and by the benchmark scripts' headers.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

CPU_FLAGS = [
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "sve",
    "i8mm",
    "bf16",
]
PACKAGES = [
    "edgecompress",
    "numpy",
    "onnxruntime",
    "onnx",
    "torch",
    "ai-edge-litert",
    "tensorflow",
    "matplotlib",
]


def cpu_model_and_flags() -> tuple[str, set[str]]:
    """The CPU's model name and its feature flags (x86 ``flags`` or Arm ``Features``), from
    /proc/cpuinfo; the platform's processor name and no flags where that file is absent."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def package_versions(names: list[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (absent packages left out)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_info() -> dict:
    """CPU model, the SIMD flags that matter for int8/fp16 kernels, cores, versions."""
    model, flags = cpu_model_and_flags()
    return {
        "cpu": model,
        "arch": platform.machine(),
        "flags": [f for f in CPU_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": package_versions(),
    }
