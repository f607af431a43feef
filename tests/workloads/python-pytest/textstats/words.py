"""Splitting text into words and sentences."""

import re

# A word: letters, digits and inner apostrophes or hyphens ("project's", "read-only").
_WORD = re.compile(r"[A-Za-z0-9]+(?:['\-][A-Za-z0-9]+)*")
# A sentence ends at '.', '!' or '?' followed by whitespace or the end of the text.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def words(text):
    """The words of `text`, lower-cased, possessive "'s" removed."""
    out = []
    for w in _WORD.findall(text):
        w = w.lower()
        if w.endswith("'s"):
            w = w[:-2]
        out.append(w)
    return out


def sentences(text):
    """The non-empty sentences of `text`, whitespace collapsed."""
    parts = _SENTENCE_END.split(" ".join(text.split()))
    return [p for p in parts if p]
