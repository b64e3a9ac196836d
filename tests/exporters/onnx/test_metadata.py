"""Serving facts (family, label names, image preprocessing) kept in an ONNX file's own
metadata_props: written, replaced, read back; other metadata untouched."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from edgecompress.exporters.onnx import metadata


def _identity(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph)
    model.metadata_props.add(key="author", value="someone")
    onnx.save(model, str(path))
    return path


def test_stamp_read_and_replace(tmp_path):
    path = _identity(tmp_path / "m.onnx")
    facts = {"family": "image-classification", "id2label": {"0": "cat"}, "image": {"height": 32}}
    assert metadata.stamp(path, facts) == facts
    assert metadata.read(path) == facts
    metadata.stamp(path, {"family": "text-classification"})
    assert metadata.read(path) == {"family": "text-classification"}  # replaced, not appended
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["author"] == "someone" and len(props) == 2


def test_serving_facts_leave_out_empty_values_and_other_files(tmp_path):
    extra = {"model_type": "vit", "family": "image-classification", "id2label": None}
    assert metadata.serving_facts(extra) == {"family": "image-classification"}
    assert metadata.stamp(_identity(tmp_path / "m.onnx"), {}) == {}
    assert metadata.read(tmp_path / "m.onnx") == {}
    assert metadata.read(tmp_path / "model.tflite") == {}
