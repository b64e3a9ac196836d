"""Block sizes that fit each layer of a weight-only (MatMulNBits / GatherBlockQuantized) pass.

MatMulNBits takes blocks of a power of two >= 16 along K (the weight's input axis);
GatherBlockQuantized likewise along a table's row. A layer whose K the requested block does
not divide gets the largest power-of-two block (>= 16, <= the requested one) that divides it,
and a layer no such block divides stays float: quantizing a whole model never fails on one
odd layer shape, and the export's details name every layer that got another block or none.

Also: ``gemm_to_matmul`` turns Gemm nodes with a constant weight (GPT-2's Conv1D layers,
exported as Gemm) into MatMul (+ Add) so MatMulNBits can take them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MIN_BLOCK = 16


def fitting_block(k: int, block: int) -> int | None:
    """The largest power of two in [16, ``block``] dividing ``k`` (None: none does)."""
    size = 1 << (max(block, 1).bit_length() - 1)  # the largest power of two <= block
    while size >= MIN_BLOCK:
        if k % size == 0:
            return size
        size //= 2
    return None


@dataclass
class BlockPlan:
    """Every quantizable node's block size; the ones that stay float, with why."""

    requested: int
    sizes: dict[str, int] = field(default_factory=dict)  # node -> block size
    floats: dict[str, str] = field(default_factory=dict)  # node -> reason it stays float

    def by_size(self) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for node, size in self.sizes.items():
            groups.setdefault(size, []).append(node)
        return dict(sorted(groups.items(), reverse=True))

    def refitted(self) -> dict[str, int]:
        """Nodes whose block is not the requested one."""
        return {n: s for n, s in self.sizes.items() if s != self.requested}

    def to_dict(self) -> dict:
        return {"block_sizes_fitted": self.refitted(), "float_layers": dict(self.floats)}


# op type -> (input index of the constant weight, axis the blocks run along)
WEIGHT_AXIS = {"MatMul": (1, 0), "Gather": (0, 1)}


def plan_blocks(model, block: int, ops, exclude) -> BlockPlan:
    """The block size of every constant-weight node of ``ops`` not in ``exclude``."""
    import onnx

    floats = {
        i.name: list(i.dims)
        for i in model.graph.initializer
        if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    }
    plan, skip = BlockPlan(block), set(exclude)
    for node in model.graph.node:
        if node.op_type not in ops or node.name in skip:
            continue
        index, axis = WEIGHT_AXIS[node.op_type]
        dims = floats.get(node.input[index]) if len(node.input) > index else None
        if dims is None or len(dims) != 2:
            continue  # not a constant 2-D weight: the quantizer leaves it alone anyway
        size = fitting_block(dims[axis], block)
        if size is None:
            plan.floats[node.name] = (
                f"{node.op_type} weight {dims}: {dims[axis]} is not divisible by any block "
                f"size in 16..{block} (power of two)"
            )
        else:
            plan.sizes[node.name] = size
    return plan


def gemm_to_matmul(model) -> list[str]:
    """Rewrite each Gemm with a constant float weight (alpha 1, beta 1, no transA) as MatMul
    (+ Add of its bias) in place; transB weights are stored transposed. Returns the names."""
    from onnx import helper

    inits = {i.name: i for i in model.graph.initializer}
    users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    converted, nodes = [], []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if not _plain_gemm(node, attrs, inits):
            nodes.append(node)
            continue
        weight = _kn_weight(model, inits, users, inits[node.input[1]], attrs.get("transB", 0))
        out, has_bias = node.output[0], len(node.input) > 2 and bool(node.input[2])
        mm_out = f"{out}_matmul" if has_bias else out
        nodes.append(helper.make_node("MatMul", [node.input[0], weight], [mm_out], node.name))
        if has_bias:
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [out], f"{node.name}_b"))
        converted.append(node.name)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return converted


def _plain_gemm(node, attrs: dict, inits: dict) -> bool:
    import onnx

    if node.op_type != "Gemm" or node.input[1] not in inits:
        return False
    weight = inits[node.input[1]]
    plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
    floating = weight.data_type == onnx.TensorProto.FLOAT and len(weight.dims) == 2
    return plain and floating and not attrs.get("transA", 0)


def _kn_weight(model, inits: dict, users: dict, weight, trans_b: int) -> str:
    """The name of ``weight`` laid out [K, N] (transposed into a new initializer when it is
    stored [N, K] and shared, in place when only this Gemm reads it)."""
    from onnx import numpy_helper

    if not trans_b:
        return weight.name
    name = weight.name if users[weight.name] == 1 else f"{weight.name}_kn"
    if name not in inits or name == weight.name:
        array = numpy_helper.to_array(weight).T.copy()
        if name == weight.name:
            weight.CopyFrom(numpy_helper.from_array(array, name))
        else:
            inits[name] = numpy_helper.from_array(array, name)
            model.graph.initializer.append(inits[name])
    return name
