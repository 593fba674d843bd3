"""Synthetic prompts and samples whose surface features vary independently, and simulated
labelers' preferences over them (used by the analytics, dashboard and browser tests)."""

from __future__ import annotations

import math
import random

from labeling.textstats import copy_fraction, sentiment

VOCAB = [
    "river",
    "stone",
    "market",
    "window",
    "garden",
    "letter",
    "morning",
    "silver",
    "engine",
    "harbor",
    "lantern",
    "forest",
    "village",
    "kettle",
    "meadow",
    "thunder",
    "pocket",
    "ladder",
    "candle",
    "mirror",
    "orchard",
    "painter",
    "sailor",
    "winter",
]
POSITIVE = ["wonderful", "lovely", "great", "happy", "delightful"]
NEGATIVE = ["terrible", "awful", "sad", "horrible", "miserable"]


def prompt_and_samples(rng: random.Random, k: int = 4) -> tuple[str, list[str]]:
    prompt_words = [rng.choice(VOCAB) for _ in range(24)]
    samples = []
    for _ in range(k):
        copied = rng.randint(0, 10)
        start = rng.randint(0, len(prompt_words) - copied)
        chunk = prompt_words[start : start + copied]
        fresh = [rng.choice(VOCAB) + "s" for _ in range(rng.randint(3, 10))]
        mood = rng.choice([POSITIVE, NEGATIVE, []])
        if mood:
            fresh.insert(rng.randrange(len(fresh) + 1), rng.choice(mood))
        samples.append(" ".join(chunk + fresh))
    return " ".join(prompt_words), samples


def choose(preference: str, prompt: str, samples: list[str], rng: random.Random) -> int:
    """A simulated labeler's choice: softmax over a preference score, or uniform."""
    if preference == "random":
        return rng.randrange(len(samples))
    if preference == "copy":
        scores = [12.0 * copy_fraction(prompt, s) for s in samples]
    elif preference == "sentiment":
        scores = [4.0 * sentiment(s) for s in samples]
    else:
        raise ValueError(preference)
    weights = [math.exp(s) for s in scores]
    return rng.choices(range(len(samples)), weights=weights)[0]
