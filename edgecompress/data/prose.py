"""English prose from the standard library: the sentences of Python's reference manual
(``pydoc_data.topics``), the text behind the ``sentences`` and ``topics`` built-ins."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def prose_sentences(text: str, min_words: int = 6, max_words: int = 60) -> list[str]:
    """The prose sentences of one reference-manual page, in order (code and tables skipped)."""
    found = []
    for paragraph in text.split("\n\n"):
        if paragraph.startswith((" ", "\t")) or ">>>" in paragraph:
            continue  # code samples and indented tables are not prose
        for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
            if not min_words <= len(sentence.split()) <= max_words:
                continue
            if sentence[0].isupper() and sentence.endswith((".", "!", "?")):
                found.append(sentence)
    return found


def english_sentences(min_words: int = 6, max_words: int = 60) -> list[str]:
    """Deduplicated prose sentences from Python's bundled reference manual, in a fixed order."""
    from pydoc_data.topics import topics

    found = (
        s for key in sorted(topics) for s in prose_sentences(topics[key], min_words, max_words)
    )
    return list(dict.fromkeys(found))
