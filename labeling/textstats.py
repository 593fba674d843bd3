"""Surface measures of a sample against its prompt, one definition each: the simulated
labelers prefer by them (``labeling.simulation``), the drift diagnostics regress choices on
them (``research.analytics.features``), and benchmarks score policies with them.

Words are lower-cased ``\\w+`` runs that keep an apostrophe inside a word ("don't" is one
word), so the copier and the detector of copying count the same n-grams.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"\w+(?:'\w+)?", re.UNICODE)


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the words of ``text`` (the words of :func:`words`)."""
    return [m.span() for m in _WORD.finditer(text)]


def words(text: str) -> list[str]:
    return [text[start:end].lower() for start, end in word_spans(text)]


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def copy_fraction(prompt: str, sample: str, *, n: int = 3) -> float:
    """Fraction of the sample's word n-grams that also occur in the prompt (0 if none).

    A sample shorter than n words falls back to the largest n that fits it.
    """
    sample_words = words(sample)
    if not sample_words:
        return 0.0
    size = min(n, len(sample_words))
    grams = ngrams(sample_words, size)
    prompt_grams = set(ngrams(words(prompt), size))
    return sum(gram in prompt_grams for gram in grams) / len(grams)


def copied_spans(prompt: str, sample: str, *, n: int = 3) -> list[tuple[int, int]]:
    """Character ranges (start, end) of ``sample`` covered by the word n-grams that
    :func:`copy_fraction` counts as copied from ``prompt`` (same n, same fallback for short
    samples); overlapping and adjacent copied n-grams merge into one range. Empty exactly when
    the copy fraction is 0."""
    spans = word_spans(sample)
    if not spans:
        return []
    sample_words = [sample[start:end].lower() for start, end in spans]
    size = min(n, len(sample_words))
    prompt_grams = set(ngrams(words(prompt), size))
    ranges: list[tuple[int, int]] = []  # in word indices, end exclusive
    for i, gram in enumerate(ngrams(sample_words, size)):
        if gram not in prompt_grams:
            continue
        if ranges and i <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], i + size)
        else:
            ranges.append((i, i + size))
    return [(spans[first][0], spans[last - 1][1]) for first, last in ranges]


@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # loads its lexicon

    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=65536)
def sentiment(text: str) -> float:
    """VADER compound sentiment in [-1, 1] (the mock-sentiment task's true reward)."""
    return float(_vader().polarity_scores(text)["compound"])
