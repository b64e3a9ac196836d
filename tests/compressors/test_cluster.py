"""cluster: k-means weight sharing on the shipped digits CNN (real test split)."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch
from torch import nn

from edgecompress.compressors.cluster import CentroidInit, ClusterConfig, cluster, kmeans_1d
from edgecompress.registry import COMPRESSORS


def test_kmeans_linear_init_finds_the_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([-1.0, 0.2, 3.0])
    values = np.concatenate([c + rng.normal(0, 0.01, 500) for c in centres])
    book, idx = kmeans_1d(values, 3, CentroidInit.linear)
    assert np.allclose(book, centres, atol=0.01)
    assert np.all(np.abs(book[idx] - values) < 0.1)
    few, idx = kmeans_1d(np.array([2.0, 1.0, 2.0]), 8)  # fewer values than centroids: exact
    assert few.tolist() == [1.0, 2.0] and few[idx].tolist() == [2.0, 1.0, 2.0]


def _distinct(module) -> dict[str, int]:
    return {
        n: int(m.weight[m.weight != 0].unique().numel())
        for n, m in module.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    }


def test_cluster_shares_weights_and_keeps_zeros(digits_bundle, run_ctx):
    module = digits_bundle.module
    torch.manual_seed(0)
    with torch.no_grad():  # prune by hand: half of the first Linear's weights are zero
        w = module.classifier[0].weight
        w[torch.rand_like(w) < 0.5] = 0
    zeros = module.classifier[0].weight == 0
    config = ClusterConfig(conv_bits=5, linear_bits=4, layer_bits={"features.0": 4})
    out, stats = cluster(digits_bundle, config, run_ctx)
    distinct = _distinct(out.module)
    assert distinct["features.0"] <= 16 and distinct["classifier.0"] <= 16
    assert max(distinct.values()) <= 32
    assert torch.equal(out.module.classifier[0].weight == 0, zeros)  # zeros stay, none added
    assert stats["bits"]["features.3"] == 5 and stats["bits"]["classifier.3"] == 4
    assert stats["metric_before"] - stats["metric_after"] <= 0.03, stats
    assert stats["index_bytes"] < stats["size_bytes_before"] / 6  # <= 5 of 32 bits
    assert "cluster" in COMPRESSORS.names()


def test_accuracy_budget_picks_fewer_bits_within_the_budget(digits_bundle, run_ctx):
    config = ClusterConfig(accuracy_budget=0.01, min_bits=3, conv_bits=6, linear_bits=6)
    out, stats = cluster(digits_bundle, config, run_ctx)
    assert stats["metric_before"] - stats["metric_after"] <= 0.01 + 1e-9
    assert min(stats["bits"].values()) < 6  # some layer got fewer than the maximum


def test_finetuning_moves_only_the_centroids(digits_bundle, run_ctx):
    config = ClusterConfig(conv_bits=3, linear_bits=2, finetune_epochs=1, lr=1e-3)
    out, stats = cluster(digits_bundle, config, run_ctx)
    assert stats["metric_after"] >= stats["metric_before_finetune"]
    distinct = _distinct(out.module)
    assert distinct["features.0"] <= 16 and distinct["classifier.0"] <= 4
    assert all(not hasattr(m, "parametrizations") for m in out.module.modules())


def test_float16_codebooks_and_shared_biases_are_stored_as_float16(digits_bundle, run_ctx):
    from edgecompress.storage import format as fmt

    config = ClusterConfig(conv_bits=4, linear_bits=4, bias_bits=3, float16_codebooks=True,
                           finetune_epochs=1, lr=1e-3)  # fmt: skip
    out, stats = cluster(digits_bundle, config, run_ctx)
    assert stats["metric_before"] - stats["metric_after"] <= 0.03, stats
    layers = [(n, m) for n, m in out.module.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    params = [(f"{n}.{k}", getattr(m, k)) for n, m in layers for k in ("weight", "bias")]
    for name, p in ((n, p) for n, p in params if p is not None):
        array = p.detach().numpy()
        assert np.array_equal(array.astype(np.float16).astype(np.float32), array), name
        if name.endswith("bias") and p.numel() > 8:
            assert np.unique(array).size <= 8, name  # 3 bits
        coded = fmt.code_tensor(name, array)
        assert coded.half, name  # codebook (or raw values) kept as float16, exactly
        assert fmt.decode(fmt.write([coded]))[name].tobytes() == array.tobytes()


def test_config_validation_and_json_round_trip():
    with pytest.raises(pydantic.ValidationError, match="conv_bits"):
        ClusterConfig(conv_bits=9)
    with pytest.raises(pydantic.ValidationError, match="layer_bits"):
        ClusterConfig(layer_bits={"fc*": 1})
    with pytest.raises(pydantic.ValidationError, match="init"):
        ClusterConfig(init="kmeans++")
    config = ClusterConfig(init="density", layer_bits={"fc*": 4}, finetune_epochs=2)
    assert ClusterConfig.from_json(config.to_json()) == config


def test_int8_values_clustered_to_nearest_levels():
    from edgecompress.compressors.cluster import cluster_int8_array

    rng = np.random.default_rng(0)
    array = np.clip(np.rint(rng.normal(0, 30, (64, 128))), -128, 127).astype(np.int8)
    out = cluster_int8_array(array, 4)
    levels = np.unique(out)
    assert out.dtype == np.int8 and out.shape == array.shape and levels.size <= 16
    nearest = levels[np.abs(array[..., None].astype(int) - levels.astype(int)).argmin(-1)]
    assert np.array_equal(np.abs(out.astype(int) - array), np.abs(nearest.astype(int) - array))
    assert np.abs(out.astype(int) - array).mean() < 3  # 16 levels over ~±90


def test_int8_onnx_initializers_clustered_and_model_runs(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from edgecompress.compressors.cluster import cluster_int8_onnx
    from tests.awslambda.lambda_models import digits_int8_onnx

    src = digits_int8_onnx(tmp_path)
    dst = tmp_path / "k5.onnx"
    changed = cluster_int8_onnx(src, dst, 5, min_elements=1024)
    assert changed
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(dst)).graph.initializer}
    assert all(np.unique(inits[n]).size <= 32 for n in changed)
    x = np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32)
    a = ort.InferenceSession(str(src)).run(None, {"image": x})[0]
    b = ort.InferenceSession(str(dst)).run(None, {"image": x})[0]
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.75


def test_int8_onnx_per_channel_books_per_column_and_per_table_row(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgecompress.compressors.cluster import cluster_int8_onnx

    rng = np.random.default_rng(3)
    weight = rng.integers(-127, 127, (64, 80), endpoint=True).astype(np.int8)
    table = rng.integers(-127, 127, (300, 80), endpoint=True).astype(np.int8)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"]),
         helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
         helper.make_node("MatMul", ["x", "wf"], ["y"])],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("rows", TensorProto.INT8, [None, 80]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 80])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(table, "table")],
    )  # fmt: skip
    src, dst = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(helper.make_model(graph), str(src))
    assert sorted(cluster_int8_onnx(src, dst, 2, min_elements=1024, per_channel=True)) == [
        "table", "w"]  # fmt: skip
    out = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(dst)).graph.initializer}
    assert max(np.unique(c).size for c in out["w"].T) <= 4
    assert max(np.unique(r).size for r in out["table"]) <= 4
    assert np.unique(out["w"]).size > 4  # the books differ between columns
