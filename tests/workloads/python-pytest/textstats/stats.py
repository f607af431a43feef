"""Frequencies and the report built from them."""

from collections import Counter
from dataclasses import dataclass

from .words import sentences, words

# Words too common to say anything about a text.
STOP_WORDS = frozenset(
    "a an and are as in is it of on or so that the to".split()
)


def frequencies(text, skip_stop_words=True):
    """A Counter of the words of `text`."""
    ws = words(text)
    if skip_stop_words:
        ws = [w for w in ws if w not in STOP_WORDS]
    return Counter(ws)


def top(counter, n):
    """The `n` most frequent (word, count) pairs, ties broken alphabetically."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


@dataclass(frozen=True)
class Report:
    """What `report` finds in a text."""

    words: int
    distinct: int
    sentences: int
    top: list

    @property
    def words_per_sentence(self):
        return round(self.words / self.sentences, 1) if self.sentences else 0.0


def report(text, n=5):
    """The report on `text` with its `n` most frequent words."""
    ws = words(text)
    return Report(
        words=len(ws),
        distinct=len(set(ws)),
        sentences=len(sentences(text)),
        top=top(frequencies(text), n),
    )
