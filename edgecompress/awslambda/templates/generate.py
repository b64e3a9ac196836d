"""Greedy text generation over an exported causal LM, copied into the zip beside handler.py.

Standalone (stdlib + numpy + the tokenizers library; the model runs through the handler's
``run(feeds) -> {name: array}``): a request ``{"prompt": "...", "max_new_tokens": N}`` gets
``{"text", "token_ids", "prompt_tokens", "finish_reason"}``. N defaults to io_spec.json's
``generation.default_max_new_tokens`` and may not exceed ``generation.max_new_tokens`` (a
larger one is refused with a 400 naming the bound).

The graph has no KV cache: every step runs the whole sequence again (logits of the last
position are used). The prompt keeps its last tokens so that prompt + N fits the context.
"""

import os

import numpy as np

_TOKENIZER = []


class BadPrompt(ValueError):
    """A request this module refuses (the handler answers 400 with the message)."""


def _tokenizer(root, spec):
    if not _TOKENIZER:
        from tokenizers import Tokenizer

        _TOKENIZER.append(Tokenizer.from_file(os.path.join(root, spec["text"]["tokenizer_file"])))
    return _TOKENIZER[0]


def parse(request, settings):
    """(prompt, max_new_tokens) of a request, or BadPrompt naming what is wrong."""
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadPrompt("'prompt' must be a non-empty string")
    bound = int(settings["max_new_tokens"])
    n = request.get("max_new_tokens", settings.get("default_max_new_tokens", bound))
    if isinstance(n, bool) or not isinstance(n, int):
        raise BadPrompt(f"'max_new_tokens' must be an integer in 1..{bound}, got {n!r}")
    if n < 1 or n > bound:
        raise BadPrompt(f"'max_new_tokens' {n} is out of range: this function allows 1..{bound}")
    unknown = sorted(set(request) - {"prompt", "max_new_tokens"})
    if unknown:
        raise BadPrompt(f"unknown field(s) {unknown}: expected 'prompt' and 'max_new_tokens'")
    return prompt, n


def greedy(run, prompt_ids, max_new_tokens, settings, int_dtype="int64"):
    """Token ids appended to ``prompt_ids`` by greedy decoding, and why it stopped."""
    eos = set(settings.get("eos_token_ids") or [])
    context = settings.get("context_length") or 0
    ids = list(prompt_ids)
    if context:
        ids = ids[-max(1, context - max_new_tokens) :]
    new = []
    for _ in range(max_new_tokens):
        feeds = {
            "input_ids": np.asarray([ids], dtype=int_dtype),
            "attention_mask": np.ones((1, len(ids)), dtype=int_dtype),
        }
        logits = run(feeds)[settings.get("logits", "logits")]
        token = int(np.argmax(logits[0, -1]))
        if token in eos:
            return new, "eos", len(ids) - len(new)
        new.append(token)
        ids.append(token)
    return new, "length", len(ids) - len(new)


def answer(request, run, root, spec):
    """The JSON answer to a generation request (BadPrompt on a bad one)."""
    settings = spec["generation"]
    prompt, n = parse(request, settings)
    tok = _tokenizer(root, spec)
    prompt_ids = tok.encode(prompt).ids
    if not prompt_ids:
        raise BadPrompt("'prompt' tokenizes to no tokens")
    dtype = next((s["dtype"] for s in spec["inputs"] if s["name"] == "input_ids"), "int64")
    new, reason, used = greedy(run, prompt_ids, n, settings, dtype)
    return {
        "text": tok.decode(new),
        "token_ids": new,
        "prompt_tokens": used,
        "finish_reason": reason,
    }
