"""Codebook GPTQ: per-channel int8 levels (k-means), GPTQ rounding onto them beats rounding
to the nearest level on the layer's output, and embedding rows snapped to their levels."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.compressors.codebook_gptq import (
    codebook_gptq,
    row_codebooks,
    share_table_rows,
    snap_rows,
)
from edgecompress.exporters.onnx.gptq import channel_scales


def test_row_codebooks_cap_levels_and_keep_few_valued_rows_exact():
    rng = np.random.default_rng(0)
    q = np.clip(rng.normal(0, 30, (6, 500)), -127, 127).astype(np.int8)
    q[0] = rng.choice(np.array([-5, 3, 90], np.int8), 500)
    books = row_codebooks(q, 8)
    assert books.shape == (6, 8) and books.dtype == np.int8
    assert np.all(np.diff(books.astype(int), axis=1) >= 0)
    shared, index = snap_rows(q, books)
    assert all(np.unique(r).size <= 8 for r in shared)
    assert np.array_equal(shared[0], q[0])  # 3 distinct values: kept exactly
    assert np.array_equal(np.take_along_axis(books, index.astype(int), 1), shared)
    # nearest level: no value is closer to another level of its row
    dist = np.abs(q[1:, :, None].astype(int) - books[1:, None, :].astype(int))
    assert np.array_equal(np.abs(q[1:].astype(int) - shared[1:]), dist.min(2))


@pytest.mark.parametrize("levels", [4, 16])
def test_codebook_gptq_beats_nearest_level_on_layer_output(levels):
    rng = np.random.default_rng(1)
    k, n = 64, 48
    x = rng.normal(size=(2000, k)) @ rng.normal(size=(k, k)) * 0.3  # correlated inputs
    w = rng.normal(size=(k, n)).astype(np.float32)
    hessian = x.T @ x / len(x)
    q, scale = codebook_gptq(w, hessian, levels=levels)
    assert q.dtype == np.int8 and np.allclose(scale, channel_scales(w))
    assert max(np.unique(q[:, j]).size for j in range(n)) <= levels
    rtn = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    nearest, _ = snap_rows(rtn.T, row_codebooks(rtn.T, levels))

    def out_err(qq):
        return np.linalg.norm(x @ (w - qq.astype(np.float64) * scale))

    assert out_err(q) < 0.9 * out_err(nearest.T)  # measured 0.81 at 16 levels


def test_share_table_rows_snaps_only_gathered_int8_tables(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    table = rng.integers(-127, 127, (300, 32), endpoint=True).astype(np.int8)
    other = rng.integers(-127, 127, (300, 32), endpoint=True).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"]),
         helper.make_node("Add", ["rows", "other_rows"], ["out"])],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("other_rows", TensorProto.INT8, [None, 32])],
        [helper.make_tensor_value_info("out", TensorProto.INT8, [None, 32])],
        [numpy_helper.from_array(table, "table"), numpy_helper.from_array(other, "other")],
    )  # fmt: skip
    src, dst = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(helper.make_model(graph), str(src))
    assert share_table_rows(src, dst, 4) == ["table"]
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(dst)).graph.initializer}
    assert max(np.unique(r).size for r in inits["table"]) <= 4
    assert np.array_equal(inits["other"], other)


def test_uniform_step_grid_is_shared_by_every_channel():
    from edgecompress.compressors.codebook_gptq import uniform_levels

    assert uniform_levels(4)[[0, -1]].tolist() == [-124, 124] and uniform_levels(4).size == 63
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 32))
    w = rng.normal(size=(32, 16)).astype(np.float32)
    q, scale = codebook_gptq(w, x.T @ x / len(x), step=4)
    assert np.all(q % 4 == 0) and np.abs(q.astype(int)).max() <= 124
    # GPTQ on the step-4 grid beats rounding each weight to the nearest grid value
    rtn = np.clip(np.rint(w / scale / 4) * 4, -124, 124)
    err = [np.linalg.norm(x @ (w - a * scale)) for a in (q.astype(np.float64), rtn)]
    assert err[0] < err[1]
