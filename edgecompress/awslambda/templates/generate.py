"""Greedy text generation over an exported causal LM, copied into the zip beside handler.py.

Standalone (stdlib + numpy + the tokenizers library; the model runs through the handler's
``run(feeds) -> {name: array}``): a request ``{"prompt": "...", "max_new_tokens": N}`` gets
``{"text", "token_ids", "prompt_tokens", "finish_reason"}``. N defaults to io_spec.json's
``generation.default_max_new_tokens`` and may not exceed ``generation.max_new_tokens`` (a
larger one is refused with a 400 naming the bound).

A model file with ``past_key_values.{i}.key`` / ``.value`` inputs (io_spec.json's inputs are the
session's) is run with its KV cache: the prompt once with a past of length 0, then one token per
step, its ``present.*`` outputs fed back as the next past. A file without them runs the whole
sequence again at every step (logits of the last position are used). The prompt keeps its last
tokens so that prompt + N fits the context.
"""

import os

import numpy as np

_TOKENIZER = []
PAST = "past_key_values."
PRESENT = "present."


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


def cache_inputs(inputs):
    """(name, kv_heads, head_dim, dtype) of each past input of an io_spec ``inputs`` list
    (none: the file has no KV cache)."""
    return [
        (s["name"], s["shape"][1], s["shape"][3], s.get("dtype", "float32"))
        for s in inputs
        if s["name"].startswith(PAST)
    ]


def empty_past(inputs, batch):
    """Zero-length past arrays for every past input of an io_spec ``inputs`` list."""
    return {
        n: np.zeros((batch, heads, 0, size), dtype=t) for n, heads, size, t in cache_inputs(inputs)
    }


def greedy(run, prompt_ids, max_new_tokens, settings, int_dtype="int64", past=None):
    """Token ids appended to ``prompt_ids`` by greedy decoding, and why it stopped; ``past``
    (cache_inputs) switches to the cached loop."""
    eos = set(settings.get("eos_token_ids") or [])
    context = settings.get("context_length") or 0
    ids = list(prompt_ids)
    if context:
        ids = ids[-max(1, context - max_new_tokens) :]
    feeds = {n: np.zeros((1, heads, 0, size), dtype=t) for n, heads, size, t in past or []}
    new, fresh = [], ids
    for _ in range(max_new_tokens):
        feeds["input_ids"] = np.asarray([fresh], dtype=int_dtype)
        feeds["attention_mask"] = np.ones((1, len(ids)), dtype=int_dtype)
        outputs = run(feeds)
        token = int(np.argmax(outputs[settings.get("logits", "logits")][0, -1]))
        if token in eos:
            return new, "eos", len(ids) - len(new)
        new.append(token)
        ids.append(token)
        if past:  # the cache holds everything before the new token
            feeds = {p[0]: outputs[PRESENT + p[0][len(PAST) :]] for p in past}
            fresh = [token]
        else:
            fresh = ids
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
    past = cache_inputs(spec["inputs"])
    new, reason, used = greedy(run, prompt_ids, n, settings, dtype, past)
    return {
        "text": tok.decode(new),
        "token_ids": new,
        "prompt_tokens": used,
        "finish_reason": reason,
    }
