"""Word statistics for plain text: tokens, frequencies and a short report."""

from .stats import Report, frequencies, report, top
from .words import sentences, words

__all__ = ["Report", "frequencies", "report", "sentences", "top", "words"]
