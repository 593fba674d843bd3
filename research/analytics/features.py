"""Surface features of the K samples of a comparison, as seen by the labeler.

Per sample: display position (0 = shown first), length (tokens when known, else words),
fraction of its word n-grams copied from the prompt, and VADER compound sentiment (the
measures of :mod:`labeling.textstats`, which the simulated labelers prefer by).
Columns are standardized over the fitted data so that coefficients compare per SD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeling.textstats import copy_fraction, sentiment, words

FEATURES = ("position", "length", "copy", "sentiment")
FEATURE_LABELS = {
    "position": "display position (later on screen)",
    "length": "length",
    "copy": "copied from prompt (3-grams)",
    "sentiment": "sentiment (VADER)",
}


@dataclass(frozen=True)
class ComparisonView:
    """What one labeler saw: the prompt, K samples, and display_order[i] = sample at slot i."""

    prompt: str
    samples: Sequence[str]
    display_order: Sequence[int]
    token_lengths: Sequence[int] | None = None


def raw_features(view: ComparisonView) -> np.ndarray:
    """A K x len(FEATURES) matrix, rows in the comparison's own sample order."""
    k = len(view.samples)
    if sorted(view.display_order) != list(range(k)):
        raise ValueError("display_order must be a permutation of the sample indices")
    position = np.empty(k)
    for slot, sample_index in enumerate(view.display_order):
        position[sample_index] = slot
    if view.token_lengths is not None and len(view.token_lengths) == k:
        length = np.asarray(view.token_lengths, dtype=float)
    else:
        length = np.array([len(words(s)) for s in view.samples], dtype=float)
    copied = np.array([copy_fraction(view.prompt, s) for s in view.samples])
    senti = np.array([sentiment(s) for s in view.samples])
    return np.column_stack([position, length, copied, senti])


def standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-score the last axis' columns over all rows of an (n, K, p) array.

    Returns (z, mean, sd); a constant column gets sd 1 (and is centred to 0).
    """
    flat = x.reshape(-1, x.shape[-1])
    mean = flat.mean(axis=0)
    sd = flat.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return (x - mean) / sd, mean, sd
