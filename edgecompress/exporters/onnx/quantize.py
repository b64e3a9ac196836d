"""QuantSpec realised with onnxruntime: static QDQ/QOperator, dynamic, int4 MatMulNBits, fp16.

Choices measured on this CPU (x86-64 AVX2 without VNNI), recorded in each variant's details:
- static int8, default QOperator U8S8 with reduce_range and per-channel weights: 7-bit
  weights keep the u8*s8 pair sums of VPMADDUBSW from saturating; on the digits CNN it keeps
  float accuracy, is the smallest file and ran fastest (0.03 ms vs 0.12 ms for S8S8 QDQ).
  QDQ (S8S8, per-channel: what ORT recommends for x64 QDQ) is one option away.
- dynamic int8 on transformers: after the fusions, per-channel, S8 weights, with
  DefaultTensorType FLOAT (shape inference of fused ops): MiniLM-L6 mean cosine 0.993
  (plain defaults gave 0.960).
- int4 weight-only on MiniLM-L6 (514 test sentences, block 32, measured on AVX512-VNNI):
  quantizing the embedding tables too (GatherBlockQuantized) takes the file from 54.5 MB to
  14.3 MB (mean cosine 0.966 -> 0.962, symmetric); zero points (asymmetric) give 0.971 for
  +0.35 MB; V and FF1 MatMuls at 8 bits on top: 0.990 (min 0.976), 16.9 MB. accuracy_level
  4 (int8 activations) ran 17 % (batch 32) to 35 % (batch 1) faster at the same cosine.
"""

from __future__ import annotations

import contextlib
import fnmatch
import tempfile
from pathlib import Path

from edgecompress.exporters.calibration import make_reader
from edgecompress.exporters.onnx.blocks import MIN_BLOCK, gemm_to_matmul, plan_blocks
from edgecompress.exporters.onnx.optimize import _quiet_logs

CALIBRATION = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


def excluded_nodes(path: Path, patterns: list[str]) -> list[str]:
    """ONNX node names whose torch module path matches a keep_float pattern.

    Exported node names carry the module path ('/encoder/layer.0/attention/MatMul' from
    TorchScript, weight initializers 'classifier.0.weight' from dynamo): both are tried.
    """
    import onnx

    if not patterns:
        return []
    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    names = []
    for node in graph.node:
        module_paths = {node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")}
        module_paths |= {i.rsplit(".", 1)[0] for i in node.input if i in inits and "." in i}
        if any(fnmatch.fnmatchcase(m, p) for m in module_paths for p in patterns):
            names.append(node.name)
    return names


def quantize_static(
    src: Path, dst: Path, batches, method: str, per_channel: bool, fmt: str, exclude: list[str]
) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as ort_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_name(dst.stem + ".pre.onnx").resolve()
    # when its symbolic shape inference gives up, onnxruntime saves sym_shape_infer_temp.onnx
    # (+ external .data) into the working directory: keep that litter out of the user's folder
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        quant_pre_process(str(Path(src).resolve()), str(pre), skip_optimization=False)
    qoperator = fmt == "qoperator"
    options = {
        "quant_format": QuantFormat.QOperator if qoperator else QuantFormat.QDQ,
        "activation_type": QuantType.QUInt8 if qoperator else QuantType.QInt8,
        "weight_type": QuantType.QInt8,
        "reduce_range": qoperator,
        "per_channel": per_channel,
        "calibrate_method": getattr(CalibrationMethod, CALIBRATION[method]),
        "nodes_to_exclude": exclude or None,
    }
    try:
        ort_static(str(pre), str(dst), make_reader(batches), **options)
    finally:
        pre.unlink(missing_ok=True)
    return {
        "quant_format": "QOperator" if qoperator else "QDQ",
        "activation_type": "uint8" if qoperator else "int8",
        "weight_type": "int8",
        "reduce_range": qoperator,
        "per_channel": per_channel,
        "calibration": {
            "method": method,
            "samples": sum(len(next(iter(b.values()))) for b in batches),
        },
        "nodes_excluded": exclude,
    }


def quantize_dynamic(src: Path, dst: Path, per_channel: bool, exclude: list[str]) -> dict:
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_dynamic

    ort_dynamic(
        str(src),
        str(dst),
        per_channel=per_channel,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude or None,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return {
        "quant_format": "dynamic (QOperator MatMulInteger / DynamicQuantizeLinear)",
        "weight_type": "int8",
        "per_channel": per_channel,
        "reduce_range": False,
        "default_tensor_type": "float",
        "nodes_excluded": exclude,
    }


def quantize_nbits(
    src: Path,
    dst: Path,
    bits: int,
    group_size: int,
    symmetric: bool,
    exclude: list[str],
    accuracy_level: int = 0,
    gather: bool = False,
    keep_8bit: list[str] | None = None,
) -> dict:
    """MatMulNBits weight-only quantization of every constant-weight MatMul.

    ``gather`` (int4 only): constant float tables read by Gather (word embeddings) become
    com.microsoft GatherBlockQuantized, blocks of ``group_size`` along the hidden axis (the
    quantizer then raises the ONNX opset to 21 for its INT4 tensors). ``keep_8bit``: MatMul
    node names quantized to 8 bits instead. ``accuracy_level`` 4: int8 activations inside
    MatMulNBits (the VNNI / AVX2 integer path)."""
    import onnx
    from onnxruntime.quantization.onnx_model import ONNXModel

    model = onnx.load(str(src))
    gemms = gemm_to_matmul(model)  # GPT-2's Conv1D layers export as Gemm
    matmuls = _const_weight_nodes(model.graph, "MatMul")
    keep_8bit = [n for n in matmuls if n in set(keep_8bit or ()) - set(exclude)]
    if keep_8bit and bits != 8:
        others = [n for n in matmuls if n not in keep_8bit]
        skip = [*exclude, *others]
        model, _ = _fitted_pass(model, 8, group_size, symmetric, skip, accuracy_level)
    ops, skipped = ("MatMul",), list(exclude)
    unfit = _unquantizable_gathers(model, MIN_BLOCK)  # narrower tables get a smaller block
    tables = set(_const_weight_nodes(model.graph, "Gather", 0)) - set(unfit) - set(exclude)
    if gather and bits == 4 and tables:  # Gather in the op types raises the opset to 21
        ops, skipped = ("MatMul", "Gather"), [*exclude, *unfit]
    model, plan = _fitted_pass(model, bits, group_size, symmetric, skipped, accuracy_level, ops)
    ONNXModel(model).save_model_to_file(str(dst), use_external_data_format=False)
    counts = _op_counts(model)
    return {
        "quant_format": "MatMulNBits (weight-only, float IO)",
        "compute": "int8 activations (accuracy_level 4)" if accuracy_level == 4 else "float",
        "bits": bits,
        "block_size": group_size,
        "symmetric": symmetric,
        "accuracy_level": accuracy_level,
        "matmulnbits_nodes": counts.get("MatMulNBits", 0),
        "matmulnbits_8bit": keep_8bit if bits != 8 else [],
        "gather_block_quantized": counts.get("GatherBlockQuantized", 0),
        "float_matmuls_left": counts.get("MatMul", 0),
        "opset": next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "nodes_excluded": exclude,
        "gemm_to_matmul": len(gemms),
        **plan.to_dict(),
    }


def _fitted_pass(model, bits, group_size, symmetric, exclude, level, ops=("MatMul",)):
    """``_nbits_pass`` once per block size: each layer gets the largest power-of-two block
    <= ``group_size`` that divides it, a layer none divides stays float (blocks.plan_blocks)."""
    plan = plan_blocks(model, group_size, ops, exclude)
    for size, nodes in plan.by_size().items():
        rest = [n for n in plan.sizes if n not in set(nodes)]
        skip = [*exclude, *plan.floats, *rest]
        model = _nbits_pass(model, bits, size, symmetric, skip, level, ops)
    return model, plan


def _nbits_pass(model, bits, group_size, symmetric, exclude, level, ops=("MatMul",)):
    import numpy as np
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        model,
        bits=bits,
        block_size=group_size,
        is_symmetric=symmetric,
        accuracy_level=level or None,
        nodes_to_exclude=exclude,
        op_types_to_quantize=ops,
        quant_axes=(("MatMul", 0), ("Gather", 1)),
    )
    with _quiet_logs(), np.errstate(divide="ignore", invalid="ignore"):
        quantizer.process()  # all-zero blocks (a [PAD] embedding row) divide 0 by a 0 scale
    return quantizer.model.model


def _const_weight_nodes(graph, op_type: str, data_index: int | None = None) -> list[str]:
    """Nodes of ``op_type`` with a float initializer input (at ``data_index`` if given)."""
    import onnx

    floats = {
        i.name
        for i in graph.initializer
        if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    }
    return [
        n.name
        for n in graph.node
        if n.op_type == op_type
        and any(
            name in floats
            for k, name in enumerate(n.input)
            if data_index is None or k == data_index
        )
    ]


def _unquantizable_gathers(model, group_size: int) -> list[str]:
    """Gathers GatherBlockQuantized cannot take: non-float or non-2-D tables, blocks that are
    not a power of two, tables narrower than a block."""
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    ok = set(_const_weight_nodes(model.graph, "Gather", data_index=0))
    power_of_two = group_size & (group_size - 1) == 0
    out = []
    for node in model.graph.node:
        if node.op_type != "Gather":
            continue
        dims = shapes.get(node.input[0], [])
        if node.name not in ok or not power_of_two or len(dims) != 2 or dims[1] < group_size:
            out.append(node.name)
    return out


def _op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def convert_fp16(src: Path, dst: Path, exclude: list[str]) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(
        onnx.load(str(src)), keep_io_types=True, node_block_list=exclude or None
    )
    onnx.save(model, str(dst))
    return {
        "converter": "onnxruntime.transformers.float16",
        "io_types": "float32",
        "nodes_excluded": exclude,
    }


def compact_names(path: Path) -> dict:
    """Shorten internal tensor and node names (graph IO keeps its names).

    Quantization adds several long-named tensors (scale, zero point, quantized weight) per
    layer; on a 28k-parameter CNN their names cost ~7 % of the int8 file.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    if any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for node in graph.node
        for a in node.attribute
    ):
        return {"names_compacted": 0}  # subgraphs see outer names: leave them alone
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    mapping: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return mapping.setdefault(name, f"t{len(mapping)}")

    for init in graph.initializer:
        init.name = short(init.name)
    for k, node in enumerate(graph.node):
        node.name = f"{node.op_type}_{k}"
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    del graph.value_info[:]
    del graph.metadata_props[:]
    onnx.save(model, str(path))
    return {"names_compacted": len(mapping)}
