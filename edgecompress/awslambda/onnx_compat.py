"""Rewrite an ONNX model so an older onnxruntime loads it (python3.11 / Amazon Linux 2 gets
onnxruntime 1.16.3): drop opset imports of domains no node uses, lower the IR version, and lower
a domain's opset only when every op present has the same signature at the lower opset (the
result is re-checked with full type inference). Otherwise an ExportError names the op.

Public API: ``adapt_model(src, dest, ort_version) -> list[str]`` (the changes made).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgecompress.errors import ExportError

# What each older onnxruntime loads (measured: 1.16.3 refuses IR 10, opset 20, ai.onnx.ml 4).
ORT_LIMITS: dict[str, dict] = {
    "1.16.3": {
        "ir": 9,
        "opsets": {"": 19, "ai.onnx.ml": 3, "com.microsoft": 1},
        # measured: "Could not find an implementation for ConvInteger(10)" with int8 weights
        "no_int8_weights": ("ConvInteger",),
    },
}
HINT = "target python 3.12+ (Amazon Linux 2023, onnxruntime {new}) or export with a lower opset"


def _domain(name: str) -> str:
    return "" if name == "ai.onnx" else name


def _nodes(graph):
    """Every node of a graph, including those of subgraphs (If / Loop / Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _nodes(sub)


def all_nodes(proto) -> list:
    nodes = list(_nodes(proto.graph))
    for fn in proto.functions:
        for node in fn.node:
            nodes.append(node)
    return nodes


def _uses_external_data(proto) -> bool:
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in proto.graph.initializer)


def adapt_model(src: Path, dest: Path, ort_version: str, newest: str = "1.32") -> list[str]:
    """Write ``dest`` loadable by onnxruntime ``ort_version``; return the changes made. A model
    with external data is always inlined (the zip holds one file)."""
    import onnx

    limits = ORT_LIMITS.get(ort_version)
    head = onnx.load(str(src), load_external_data=False)
    external = _uses_external_data(head)
    if limits is None and not external:
        shutil.copyfile(src, dest)
        return []
    proto = onnx.load(str(src)) if external else head
    changes = [f"external data of {src.name} inlined into the zip's model"] if external else []
    if limits is not None:
        _check_kernels(proto, limits, ort_version, newest, src.name)
        changes += _drop_unused_imports(proto)
        changes += _lower_opsets(proto, limits["opsets"], ort_version, newest, src.name)
        changes += _lower_ir(proto, limits["ir"], ort_version)
    if not changes:
        shutil.copyfile(src, dest)
        return []
    onnx.save(proto, str(dest))
    return changes


def _check_kernels(proto, limits: dict, ort: str, newest: str, name: str) -> None:
    """Ops that version has no kernel for with int8 (signed) weights."""
    from onnx import TensorProto

    int8 = {t.name for t in proto.graph.initializer if t.data_type == TensorProto.INT8}
    banned = limits.get("no_int8_weights", ())
    for node in all_nodes(proto):
        if node.op_type in banned and len(node.input) > 1 and node.input[1] in int8:
            raise ExportError(
                f"lambda: {name}: onnxruntime {ort} has no {node.op_type} kernel for int8 "
                f"weights (node {node.name or node.output[0]}); quantize with uint8 weights "
                f"(QUInt8) or int8-static QDQ, or target python 3.12+ (onnxruntime {newest})"
            )


def _drop_unused_imports(proto) -> list[str]:
    used = {_domain(n.domain) for n in all_nodes(proto)} | {""}
    keep = [i for i in proto.opset_import if _domain(i.domain) in used]
    dropped = [f"{i.domain} {i.version}" for i in proto.opset_import if i not in keep]
    if not dropped:
        return []
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    return [f"dropped opset imports no node uses: {', '.join(dropped)}"]


def _lower_opsets(proto, limits: dict, ort: str, newest: str, name: str) -> list[str]:
    changes = []
    for imp in proto.opset_import:
        domain = _domain(imp.domain)
        limit = limits.get(domain)
        if limit is None or imp.version <= limit:
            continue
        ops = sorted({n.op_type for n in all_nodes(proto) if _domain(n.domain) == domain})
        problems = [p for op in ops if (p := _op_change(op, domain, imp.version, limit))]
        label = domain or "ai.onnx"
        if problems:
            raise ExportError(
                f"lambda: {name} uses {label} opset {imp.version} but onnxruntime {ort} (the "
                f"newest for python3.11 on Amazon Linux 2, glibc 2.26) runs {label} opset <= "
                f"{limit}, and {'; '.join(problems)}; " + HINT.format(new=newest)
            )
        changes.append(
            f"{label} opset {imp.version} -> {limit} for onnxruntime {ort} "
            f"(ops {', '.join(ops) or 'none'} have the same signature at opset {limit})"
        )
        imp.version = limit
    if changes:
        _recheck(proto, name, ort, newest)
    return changes


def _op_change(op: str, domain: str, version: int, limit: int) -> str | None:
    """None when ``op`` has the same inputs, outputs and attributes at ``limit`` as at
    ``version`` (changes only widened its types), else how it differs."""
    from onnx import defs

    try:
        new = defs.get_schema(op, version, domain)
    except defs.SchemaError:
        return None  # not an ONNX-registered op (e.g. a local function): nothing to compare
    try:
        old = defs.get_schema(op, limit, domain)
    except defs.SchemaError:
        return f"{op} does not exist before opset {new.since_version}"
    if old.since_version == new.since_version or _signature(old) == _signature(new):
        return None
    return (
        f"{op} changed at opset {new.since_version} (opset {old.since_version} has a "
        f"different signature: {_diff(old, new)})"
    )


def _signature(schema) -> tuple:
    return (
        tuple((f.name, int(f.option)) for f in schema.inputs),
        tuple((f.name, int(f.option)) for f in schema.outputs),
        tuple(sorted((k, int(a.type), a.required) for k, a in schema.attributes.items())),
    )


def _diff(old, new) -> str:
    old_in, new_in = [f.name for f in old.inputs], [f.name for f in new.inputs]
    parts = []
    if old_in != new_in:
        parts.append(f"inputs {old_in} vs {new_in}")
    attrs = sorted(set(old.attributes) ^ set(new.attributes))
    if attrs:
        parts.append(f"attributes {attrs} differ")
    return ", ".join(parts) or "attribute types or outputs differ"


def _recheck(proto, name: str, ort: str, newest: str) -> None:
    import onnx

    try:  # type constraints of every op, at the lowered opset
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(
            f"lambda: {name} does not type-check at the opset onnxruntime {ort} runs: "
            f"{str(exc).splitlines()[0][:300]}; " + HINT.format(new=newest)
        ) from None


def _lower_ir(proto, limit: int, ort: str) -> list[str]:
    if proto.ir_version <= limit:
        return []
    old, proto.ir_version = proto.ir_version, limit
    return [f"ONNX IR version {old} -> {limit} for onnxruntime {ort}"]
