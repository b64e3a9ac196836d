"""Language-model metrics against a reference (the float model), computed per position.

A causal LM's logits (``[batch, sequence, vocab]``) are reduced, batch by batch, to one row
per real position that has a real next token: ``(argmax id, -log p(true next token))``. From
those rows, the **next-token agreement** (share of positions where the candidate's top-1 next
token is the reference's) and the **perplexity** of the text (exp of the mean negative
log-likelihood) follow; nothing of size vocab is kept across batches.
"""

from __future__ import annotations

import numpy as np

ARGMAX, NLL = 0, 1


def lm_summary(logits: np.ndarray, input_ids: np.ndarray, attention_mask: np.ndarray):
    """``[P, 2]`` float64 rows (argmax id, negative log-likelihood of the next token) for every
    position whose next position is a real token (right or left padding alike)."""
    logits = np.asarray(logits, dtype=np.float64)[:, :-1]
    nxt = np.asarray(input_ids)[:, 1:]
    real = (np.asarray(attention_mask)[:, :-1] > 0) & (np.asarray(attention_mask)[:, 1:] > 0)
    rows = logits[real]  # [P, vocab]
    top = rows.max(1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(rows - top).sum(1))
    nll = log_z - rows[np.arange(len(rows)), nxt[real]]
    return np.stack([rows.argmax(1).astype(np.float64), nll], axis=1)


def perplexity(summary: np.ndarray) -> float:
    return float(np.exp(summary[:, NLL].mean())) if len(summary) else float("nan")


def lm_score(outputs: np.ndarray, reference: np.ndarray | None) -> dict:
    """next_token_agreement (the metric: 1.0 without a reference) and perplexity, with the
    reference's perplexity and the ratio between them."""
    ppl = perplexity(outputs)
    if reference is None or len(reference) != len(outputs):
        return {"metric": "next_token_agreement", "value": 1.0, "perplexity": ppl,
                "positions": int(len(outputs))}  # fmt: skip
    agree = float((outputs[:, ARGMAX] == reference[:, ARGMAX]).mean()) if len(outputs) else 1.0
    ref_ppl = perplexity(reference)
    return {
        "metric": "next_token_agreement",
        "value": agree,
        "perplexity": ppl,
        "reference_perplexity": ref_ppl,
        "perplexity_ratio": ppl / ref_ppl if ref_ppl else float("nan"),
        "positions": int(len(outputs)),
    }
