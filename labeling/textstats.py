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


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


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


@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # loads its lexicon

    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=65536)
def sentiment(text: str) -> float:
    """VADER compound sentiment in [-1, 1] (the mock-sentiment task's true reward)."""
    return float(_vader().polarity_scores(text)["compound"])
