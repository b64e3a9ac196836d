"""KV-cached causal-LM graphs (hf/causal.py exports them): inputs ``past_key_values.{i}.key`` /
``.value`` ``[batch, kv_heads, past_sequence, head_dim]``, outputs ``present.{i}.key`` / ``.value``.

Callers that know nothing of the cache (validation, metrics, latency) feed only ``input_ids`` and
``attention_mask``: ``empty_past`` gives them a past of length 0, which makes the graph a plain
full-sequence forward pass (the prefill). ``cached_logits`` runs a prefill then single-token
steps, what the Lambda handler's loop does, so the cached route can be held to the cache-less
logits.
"""

from __future__ import annotations

import numpy as np

from edgecompress.errors import ExportError

PAST_PREFIX = "past_key_values."
PRESENT_PREFIX = "present."


def is_past(name: str) -> bool:
    return name.startswith(PAST_PREFIX)


def past_names(session) -> list[str]:
    """The session's past inputs, in graph order (key then value per layer)."""
    return [i.name for i in session.get_inputs() if is_past(i.name)]


def present_name(past: str) -> str:
    return PRESENT_PREFIX + past[len(PAST_PREFIX) :]


def empty_past(session, feeds: dict) -> dict:
    """Zero-length past arrays for the past inputs ``feeds`` lacks (batch from input_ids)."""
    missing = [i for i in session.get_inputs() if is_past(i.name) and i.name not in feeds]
    if not missing:
        return {}
    batch = np.asarray(feeds["input_ids"]).shape[0]
    return {i.name: np.zeros((batch, i.shape[1], 0, i.shape[3]), np.float32) for i in missing}


def zero_length_examples(feeds: dict) -> dict:
    """Example feeds whose past inputs hold no tokens (example inputs fill every named axis
    with one length, which a cached graph refuses: its mask must cover past + new)."""
    return {
        name: (np.ascontiguousarray(a[:, :, :0]) if is_past(name) and a.ndim == 4 else a)
        for name, a in feeds.items()
    }


def cached_logits(session, input_ids: np.ndarray, attention_mask: np.ndarray, prefill: int):
    """Logits ``[batch, sequence, vocab]`` from a prefill of the first ``prefill`` positions
    (past of length 0) then one cached step per remaining position."""
    names = past_names(session)
    outputs = [o.name for o in session.get_outputs()]
    feeds = {"input_ids": input_ids[:, :prefill], "attention_mask": attention_mask[:, :prefill]}
    feeds.update(empty_past(session, feeds))
    chunks = []
    for end in range(prefill, input_ids.shape[1] + 1):
        result = dict(zip(outputs, session.run(outputs, feeds), strict=True))
        chunks.append(result["logits"])
        feeds = {n: result[present_name(n)] for n in names}
        feeds.update(
            input_ids=input_ids[:, end : end + 1], attention_mask=attention_mask[:, : end + 1]
        )
    return np.concatenate(chunks, axis=1)


def _file_past(path) -> list[tuple[str, int, int]]:
    """(name, kv_heads, head_dim) of an ONNX file's past inputs."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [
        (
            i.name,
            i.type.tensor_type.shape.dim[1].dim_value,
            i.type.tensor_type.shape.dim[3].dim_value,
        )
        for i in graph.input
        if is_past(i.name)
    ]


def calibration_feeds(path, batches: list[dict]) -> list[dict]:
    """Calibration batches with a zero-length past for a cached file (unchanged otherwise)."""
    past = _file_past(path)
    if not past:
        return batches
    return [
        {**b, **{n: np.zeros((len(b["input_ids"]), h, 0, d), np.float32) for n, h, d in past}}
        for b in batches
    ]


def refuse_static(path) -> None:
    """int8-static calibrates on prompts alone: the past inputs it sees are empty, so the
    quantized past / present Concats get no range (measured on the tiny Llama: cached top-1
    agreement 0.5) and ORT's shape inference cannot size GPT-2's cached graph."""
    if _file_past(path):
        raise ExportError(
            "onnx int8-static: not supported for KV-cached causal LMs (calibration sees only "
            "empty pasts); use int8-dynamic, int8-token, int8-weight-only or int4-weight-only"
        )
