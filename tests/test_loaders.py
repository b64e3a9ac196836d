"""Model loading: each source a user has, and the ways files go wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgecompress.errors import ModelLoadError
from edgecompress.loaders import load_factory, load_hf, load_onnx, load_path, load_pt2
from edgecompress.model import TaskKind, TaskSpec
from edgecompress.runtimes import torch_run
from tests.conftest import DIGITS_WEIGHTS


def test_factory_with_shipped_weights_is_accurate(digits_bundle, digits_data):
    from edgecompress.zoo.train import accuracy

    assert accuracy(digits_bundle.module, digits_data.test) >= 0.95
    assert digits_bundle.io.input_names == ["image"]
    assert digits_bundle.io.outputs[0].shape == ("batch", 10)


def test_factory_weights_that_do_not_fit(tmp_path):
    torch.save({"nope": torch.zeros(3)}, tmp_path / "w.pt")
    with pytest.raises(ModelLoadError, match="does not fit edgecompress.zoo:digits_cnn"):
        load_factory("edgecompress.zoo:digits_cnn", str(tmp_path / "w.pt"), TaskSpec())


def test_factory_not_importable():
    with pytest.raises(ModelLoadError, match="cannot import module 'no_such_pkg.models'"):
        load_factory("no_such_pkg.models:net", None, TaskSpec())


def test_pt2_round_trip(tmp_path, digits_bundle):
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(
        digits_bundle.module, (torch.randn(2, 1, 8, 8),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, str(tmp_path / "m.pt2"))
    bundle = load_pt2(tmp_path / "m.pt2", TaskSpec())
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    got = torch_run(bundle)({bundle.io.input_names[0]: x})
    want = torch_run(digits_bundle)({"image": x})
    np.testing.assert_allclose(next(iter(got.values())), want["logits"], atol=1e-5)
    assert bundle.io.inputs[0].shape[0] == "batch"


def test_pt2_garbage(tmp_path):
    (tmp_path / "m.pt2").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="is not a torch.export program"):
        load_pt2(tmp_path / "m.pt2", TaskSpec())


def test_hf_folder_embeds_sentences(tiny_bert_dir):
    bundle = load_hf(tiny_bert_dir, TaskSpec(TaskKind.embedding, "sentences", "cosine"))
    from edgecompress.data import Split

    out = torch_run(bundle)(bundle.feeds(Split(texts=["A short one.", "A longer sentence here."])))
    emb = out["sentence_embedding"]
    assert emb.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_hf_folder_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="has no config.json"):
        load_hf(tmp_path, TaskSpec())


def test_onnx_io_spec(digits_onnx):
    path = digits_onnx
    bundle = load_onnx(path, TaskSpec())
    assert bundle.module is None and bundle.onnx_path == path
    assert bundle.io.inputs[0].shape == ("batch", 1, 8, 8)
    assert bundle.io.outputs[0].name == "logits"


def test_load_path_unknown_suffix(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="cannot tell how to load"):
        load_path(tmp_path / "m.bin", TaskSpec())


def test_package_weights_resolve():
    from edgecompress.loaders import resolve_path

    assert resolve_path(DIGITS_WEIGHTS).is_file()


@pytest.fixture
def huge_onnx(tmp_path):
    """A 77-byte ONNX file whose input declares [1, 2**31] floats (8 GiB)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2**31])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2**31])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "huge.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert path.stat().st_size < 200
    return path


def test_declared_shape_too_large_is_refused_without_allocating(huge_onnx):
    import tracemalloc

    path = huge_onnx
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    try:
        with pytest.raises(ModelLoadError, match="'x' declares shape \\[1, 2147483648\\]"):
            load_onnx(path, TaskSpec())
        assert load_onnx(path, TaskSpec(), examples=False).example_inputs == {}  # inspect's way
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_inspect_reads_declared_shapes_without_building_inputs(huge_onnx):
    import subprocess
    import sys

    path = huge_onnx
    # VmHWM: this process's own peak RSS (ru_maxrss would carry pytest's peak over exec)
    code = (
        "import sys; from edgecompress.cli import main; sys.argv = ['compress', "
        f"'inspect', {str(path)!r}];\ntry: main()\nexcept SystemExit: pass\n"
        "print('hwm', next(l for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "x: float32[1, 2147483648]" in out.stdout
    peak_kib = int(out.stdout.rsplit("VmHWM:", 1)[1].split()[0])
    assert peak_kib < 400 * 1024  # nothing like the 8 GiB the declared shape would take


def test_recipe_folder_cannot_shadow_an_installed_package(tmp_path):
    import sys

    from edgecompress.imports import import_object

    sys.modules.pop("colorsys", None)  # a standard-library module, imported fresh below
    (tmp_path / "colorsys.py").write_text("raise SystemExit('shadowed')\n")
    (tmp_path / "mymodels.py").write_text("def build():\n    return 42\n")
    saved = list(sys.path)
    try:
        assert import_object("mymodels:build", search_dir=tmp_path)() == 42
        assert import_object("colorsys:rgb_to_hsv", search_dir=tmp_path)(1, 0, 0)[0] == 0
        assert sys.path.index(str(tmp_path)) > 0
    finally:
        sys.path[:] = saved
        sys.modules.pop("mymodels", None)
