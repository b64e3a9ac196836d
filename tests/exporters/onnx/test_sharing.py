"""int8-token weight sharing from the export config: weights on shared grids, rows snapped."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from pydantic import ValidationError

from edgecompress.exporters.onnx.sharing import TokenSharing


def test_one_grid_per_part_and_json_round_trip():
    with pytest.raises(ValidationError, match="weight_step or weight_levels, not both"):
        TokenSharing(weight_step=2, weight_levels=16)
    with pytest.raises(ValidationError):
        TokenSharing(embedding_step=1)
    config = TokenSharing(weight_levels=16, embedding_step=5)
    assert TokenSharing.model_validate_json(config.model_dump_json()) == config
    assert TokenSharing().rounding() is None and TokenSharing().share_tables(None) == {}


def test_exporter_rounds_columns_onto_levels_and_snaps_rows(tiny_bert_dir, tmp_path):
    from edgecompress.context import RunContext
    from edgecompress.data import load_sentences
    from edgecompress.exporters.onnx.exporter import OnnxConfig, export_onnx
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    bundle = load_hf(tiny_bert_dir, task)
    sharing = {"weight_levels": 8, "embedding_step": 4}
    config = OnnxConfig(
        quantize=["int8-token"], calibration_samples=64, fuse_transformer=False,
        token_sharing=sharing, tolerance={"min_cosine": 0.9},
    )  # fmt: skip
    (token,) = export_onnx(bundle, config, RunContext(load_sentences(), tmp_path), tmp_path / "o")
    assert token.details["token_sharing"] == sharing
    assert token.details["int8_token"]["weights"] == "codebook_gptq"
    assert token.details["shared_embedding_tables"] == 2  # words and positions
    model = onnx.load(str(token.path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [inits[n.input[1]] for n in model.graph.node if n.op_type == "MatMulIntegerToFloat"]
    assert len(weights) == 24
    for w in weights:
        assert max(len(np.unique(column)) for column in w.T) <= 8
    gathered = {n.input[0] for n in model.graph.node if n.op_type == "Gather"}
    tables = [v for k, v in inits.items() if k in gathered and v.dtype == np.int8]
    assert len(tables) == 2 and all((t % 4 == 0).all() for t in tables)
    assert token.validation["passed"] and token.validation["cosine"] >= 0.9
