"""Trim an unpacked Lambda tree: drop what the runtime never loads, strip, precompile .pyc.

Every removal is recorded with its bytes and reason. Whether the trimmed tree still runs is
proven by the self-check (a fresh interpreter that sees only the zip's contents); a shared
library is only removed when no remaining ELF file names it in DT_NEEDED.
"""

from __future__ import annotations

import compileall
import fnmatch
import os
import platform
import py_compile
import shutil
import struct
import subprocess
import sys
from pathlib import Path

from edgecompress.awslambda.target import host_python, interpreter_for

# (glob over the relative posix path, reason). Directories match through "/**".
TRIM_RULES: list[tuple[str, str]] = [
    ("*/__pycache__/*", "bytecode from the wheel (recompiled for the target when possible)"),
    ("*/tests/*", "test suite"),
    ("*/testing/_private/*", "test helpers"),
    ("*.pyi", "type stubs"),
    ("*/py.typed", "type marker"),
    ("*.h", "C headers"),
    ("*.hpp", "C++ headers"),
    ("*.pxd", "Cython declarations"),
    ("*.pyx", "Cython sources"),
    ("*/include/*", "C headers"),
    ("*/pkgconfig/*", "pkg-config files"),
    ("*.data/*", "wheel scripts/data (console scripts are not used on Lambda)"),
    ("bin/*", "console scripts"),
    ("numpy/f2py/*", "Fortran wrapper generator, never imported by 'import numpy'"),
    ("numpy/_pyinstaller/*", "PyInstaller hooks"),
    ("numpy/random/_examples/*", "examples"),
    ("numpy/doc/*", "docs"),
    ("numpy/*/_rational_tests.cpython-*.so", "C test module (only numpy's tests import it)"),
    ("numpy/*/_struct_ufunc_tests.cpython-*.so", "C test module (only numpy's tests import it)"),
    ("numpy/*/_operand_flag_tests.cpython-*.so", "C test module (only numpy's tests import it)"),
    ("numpy/*/_simd.cpython-*.so", "SIMD test module (only numpy's test suite imports it)"),
    ("onnxruntime/capi/libonnxruntime.so*", "C API library; the Python module does not link it"),
    ("onnxruntime/transformers/*", "model optimisation tools, not needed by InferenceSession"),
    ("onnxruntime/quantization/*", "quantization tools, not needed by InferenceSession"),
    ("onnxruntime/tools/*", "conversion tools, not needed by InferenceSession"),
    ("onnxruntime/datasets/*", "sample models"),
    ("onnxruntime/backend/*", "ONNX backend test API (imports onnx)"),
    ("ai_edge_litert/libLiteRtWebGpuAccelerator.so", "WebGPU accelerator: no GPU on Lambda"),
    ("ai_edge_litert/tools/*", "flatbuffer tools, not imported by the interpreter"),
    ("tokenizers/tools/*", "visualiser, not imported by 'import tokenizers'"),
]
DIST_INFO_KEEP = ("METADATA",)
LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")


def elf_machine(path: Path) -> int | None:
    """e_machine of an ELF file (62 x86_64, 183 aarch64), None if not ELF."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def elf_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.is_file() and elf_machine(p) is not None]


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _rule_for(rel: str) -> str | None:
    parts = rel.split("/")
    if len(parts) >= 2 and parts[0].endswith(".dist-info"):
        name = parts[-1]
        if (
            name in DIST_INFO_KEEP
            or "licenses" in parts
            or name.upper().startswith(LICENSE_PREFIXES)
        ):
            return None
        return "dist-info extras (kept METADATA and licenses)"
    for pattern, reason in TRIM_RULES:
        if fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase("./" + rel, pattern):
            return reason
    return None


def trim_tree(root: Path, keep: set[str] = frozenset()) -> list[dict]:
    """Remove files matched by TRIM_RULES under ``root``; return [{path, bytes, reason}]."""
    removed, candidates = [], []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = _rel(root, path)
            reason = None if rel in keep else _rule_for(rel)
            if reason:
                candidates.append((path, rel, reason))
    needed = _needed_libraries(root, {p for p, _, _ in candidates})
    for path, rel, reason in candidates:
        if path.name in needed:
            continue  # some kept library links it: keep it
        removed.append({"path": rel, "bytes": path.stat().st_size, "reason": reason})
        path.unlink()
    _remove_empty_dirs(root)
    return removed


def _needed_libraries(root: Path, dropping: set[Path]) -> set[str]:
    """DT_NEEDED names of the ELF files that stay (readelf works for any architecture)."""
    readelf = shutil.which("readelf")
    if not readelf:
        return set()
    needed: set[str] = set()
    for path in elf_files(root):
        if path in dropping:
            continue
        out = subprocess.run([readelf, "-d", str(path)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if "(NEEDED)" in line and "[" in line:
                needed.add(line.rsplit("[", 1)[1].rstrip("]"))
    return needed


def _remove_empty_dirs(root: Path) -> None:
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
        if Path(dirpath) != root and not os.listdir(dirpath):
            os.rmdir(dirpath)


def strip_binaries(root: Path, machine: str) -> dict:
    """``strip --strip-unneeded`` every ELF of the target machine, when a strip for it exists."""
    tool = _strip_tool(machine)
    if tool is None:
        return {
            "stripped": [],
            "skipped": f"no strip for {machine} on this host "
            f"(install binutils-{machine.replace('_', '-')}-linux-gnu); binaries kept as built",
        }
    stripped, kept = [], []
    for path in elf_files(root):
        before, original = path.stat().st_size, path.read_bytes()
        proc = subprocess.run([tool, "--strip-unneeded", str(path)], capture_output=True)
        after = path.stat().st_size
        if proc.returncode == 0 and after < before and not load_segments_ok(path):
            path.write_bytes(original)  # strip broke a patchelf'd library: keep it as built
            kept.append({"path": _rel(root, path), "reason": "strip misaligned a PT_LOAD"})
        elif proc.returncode == 0 and after < before:
            stripped.append({"path": _rel(root, path), "bytes": before - after})
    return {"stripped": stripped, "tool": tool, "kept_unstripped": kept}


def load_segments_ok(path: Path) -> bool:
    """Every PT_LOAD of a 64-bit ELF has offset == vaddr modulo its alignment (the loader
    refuses the library otherwise: "ELF load command address/offset not page-aligned")."""

    data = path.read_bytes()
    if len(data) < 64 or data[4] != 2:
        return True  # not ELF64: nothing to check
    end = "<" if data[5] == 1 else ">"
    (phoff,) = struct.unpack_from(end + "Q", data, 32)
    phentsize, phnum = struct.unpack_from(end + "HH", data, 54)
    for i in range(phnum):
        base = phoff + i * phentsize
        if base + 56 > len(data):
            return False
        p_type, _flags, offset, vaddr = struct.unpack_from(end + "IIQQ", data, base)
        (align,) = struct.unpack_from(end + "Q", data, base + 48)
        if p_type == 1 and align > 1 and offset % align != vaddr % align:
            return False
    return True


def _strip_tool(machine: str) -> str | None:
    if platform.machine() == machine and shutil.which("strip"):
        return shutil.which("strip")
    return shutil.which(f"{machine}-linux-gnu-strip")


def compile_pyc(root: Path, python: str, machine: str | None = None) -> dict:
    """Precompile .pyc (unchecked-hash, so they never go stale on read-only /var/task) with an
    interpreter of the target Python: the running one, or one found on this machine."""
    interpreter = interpreter_for(machine or platform.machine(), python)
    if interpreter is None:
        return {
            "compiled": False,
            "reason": f"no Python {python} on this host (running {host_python()}): "
            "no .pyc shipped (the runtime compiles in memory at cold start)",
        }
    here = interpreter == sys.executable
    ok = _compile_here(root) if here else compile_with(interpreter, root)
    count = sum(1 for _ in root.rglob("*.pyc"))
    return {
        "compiled": True,
        "files": count,
        "all_ok": bool(ok),
        "interpreter": interpreter,
        "invalidation_mode": "unchecked-hash",
    }


def _compile_here(root: Path) -> bool:
    return bool(
        compileall.compile_dir(
            str(root),
            ddir="/var/task",
            quiet=2,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    )


def compile_with(interpreter: str, root: Path) -> bool:
    """``compileall`` (unchecked-hash, ddir /var/task) with another interpreter."""
    proc = subprocess.run(
        [
            interpreter,
            "-I",
            "-m",
            "compileall",
            "-q",
            "-q",
            "-j",
            "1",
            "-d",
            "/var/task",
            "--invalidation-mode",
            "unchecked-hash",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode == 0
