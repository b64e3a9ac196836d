"""Lambda helpers: target tags, wheel tag checks, trimming rules, ELF machines, budget advice."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecompress.awslambda.sizes import check_budget, component_of
from edgecompress.awslambda.target import Target
from edgecompress.awslambda.trim import elf_machine, trim_tree
from edgecompress.awslambda.wheels import Wheel, check_wheel_tags
from edgecompress.errors import BudgetError, ExportError


def test_target_platforms_follow_runtime_glibc():
    al2 = Target("x86_64", "3.11").platforms()
    al2023 = Target("arm64", "3.12").platforms()
    assert al2[0] == "manylinux_2_17_x86_64" and al2[-2] == "manylinux_2_26_x86_64"
    assert "manylinux_2_27_x86_64" not in al2 and al2[-1] == "manylinux2014_x86_64"
    assert al2023[-2] == "manylinux_2_34_aarch64" and len(al2023) == 19
    with pytest.raises(ExportError, match="arch"):
        Target("ppc64le", "3.12")


def test_wheel_tags_checked_against_target():
    t = Target("arm64", "3.12")
    ok = Wheel(
        "onnxruntime", "1.32.0", Path("onnxruntime-1.32.0-cp312-cp312-manylinux_2_28_aarch64.whl")
    )
    abi3 = Wheel(
        "tokenizers",
        "0.23.3",
        Path("tokenizers-0.23.3-cp310-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"),
    )
    x86 = Wheel("numpy", "2.5.5", Path("numpy-2.5.5-cp312-cp312-manylinux_2_27_x86_64.whl"))
    new_glibc = Wheel("x", "1", Path("x-1-cp311-cp311-manylinux_2_28_x86_64.whl"))
    assert check_wheel_tags(ok, t) is None and check_wheel_tags(abi3, t) is None
    assert "does not run" in check_wheel_tags(x86, t)
    assert "does not run" in check_wheel_tags(new_glibc, Target("x86_64", "3.11"))


def test_trim_rules_keep_what_runs(tmp_path):
    files = {
        "numpy/_core/tests/test_x.py": b"x" * 10,
        "numpy/__init__.py": b"",
        "numpy-2.5.5.dist-info/METADATA": b"m",
        "numpy-2.5.5.dist-info/RECORD": b"r" * 7,
        "numpy-2.5.5.dist-info/licenses/LICENSE.txt": b"l",
        "onnxruntime/capi/libonnxruntime.so.1.32.0": b"\x7fELF" + b"\0" * 60,
        "onnxruntime/transformers/fusion.py": b"f",
        "onnxruntime/__init__.py": b"",
        "numpy/_core/include/numpy/x.h": b"h",
        "pkg/__pycache__/a.cpython-312.pyc": b"c",
    }
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    removed = {r["path"]: r for r in trim_tree(tmp_path)}
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "numpy-2.5.5.dist-info/METADATA",
        "numpy-2.5.5.dist-info/licenses/LICENSE.txt",
        "numpy/__init__.py",
        "onnxruntime/__init__.py",
    ]
    assert removed["numpy/_core/tests/test_x.py"]["bytes"] == 10
    assert removed["numpy-2.5.5.dist-info/RECORD"]["bytes"] == 7
    assert all(r["reason"] for r in removed.values())


def test_elf_machine_reads_header(tmp_path):
    f = tmp_path / "a.so"
    f.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 11 + (183).to_bytes(2, "little"))
    assert elf_machine(f) == 183
    f.write_bytes(b"not elf at all, really not")
    assert elf_machine(f) is None


def test_budget_error_names_parts_and_advice():
    parts = {
        "numpy": {"zipped": 9 << 20, "unzipped": 30 << 20},
        "onnxruntime": {"zipped": 12 << 20, "unzipped": 30 << 20},
        "model": {"zipped": 40 << 20, "unzipped": 44 << 20},
    }
    with pytest.raises(BudgetError) as info:
        check_budget("z.zip", parts, 61 << 20, 104 << 20, 50, 250, "onnxruntime")
    msg = str(info.value)
    assert "61.00 MiB zipped > budget 50 MiB" in msg and msg.index("model") < msg.index("numpy")
    assert "quantize to int8" in msg and "LiteRT" in msg and "S3" in msg and "layer" in msg
    assert info.value.breakdown == parts
    check_budget("z.zip", parts, 49 << 20, 104 << 20, 50, 250, "onnxruntime")  # fits: no error


def test_component_of():
    assert component_of("model.onnx", "model.onnx") == "model"
    assert component_of("numpy.libs/libopenblas.so", "model.onnx") == "numpy"
    assert component_of("tokenizers/__init__.py", "model.onnx") == "tokenizers"
    assert component_of("tokenizer.json", "model.onnx") == "tokenizer"
    assert component_of("__pycache__/handler.cpython-311.pyc", "model.onnx") == "handler"


def test_load_segment_alignment_check(tmp_path):
    import struct

    import numpy as np

    from edgecompress.awslambda.trim import load_segments_ok

    lib = next(Path(np.__file__).parent.glob("_core/_multiarray_umath*.so"))
    data = bytearray(lib.read_bytes())
    assert load_segments_ok(lib)
    phoff = struct.unpack_from("<Q", data, 32)[0]
    entsize, count = struct.unpack_from("<HH", data, 54)
    for i in range(count):  # shift the first PT_LOAD that has a non-zero vaddr by 16 bytes
        base = phoff + i * entsize
        p_type, _f, offset, vaddr = struct.unpack_from("<IIQQ", data, base)
        if p_type == 1 and vaddr:
            struct.pack_into("<Q", data, base + 8, offset + 16)
            break
    broken = tmp_path / "broken.so"
    broken.write_bytes(bytes(data))
    assert not load_segments_ok(broken)  # what strip did to numpy 2.2.6's openblas


def test_wheel_cache_index_survives_concurrent_writers_and_corruption(tmp_path):
    import json
    import threading

    from edgecompress.awslambda import wheels

    index = tmp_path / "index.json"
    index.write_text("{")  # a writer killed mid-way by an older version
    assert wheels._read_index(index) == {}
    errors: list[Exception] = []

    def write(i: int) -> None:
        for j in range(50):
            doc = {f"pkg{i}=={j}": "x" * (i * 100 + j)}
            wheels._write_atomically(index, json.dumps(doc).encode())

    def read() -> None:
        for _ in range(500):
            try:
                json.loads(index.read_text())
            except ValueError as exc:  # a half-written index
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]  # no temp files left
