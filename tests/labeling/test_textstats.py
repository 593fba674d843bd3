"""The surface measures shared by the simulated labelers and the drift diagnostics."""

import pytest

from labeling.textstats import copy_fraction, sentiment, words


def test_words_keep_contractions_whole():
    assert words("Don't STOP, it's 3 o'clock") == ["don't", "stop", "it's", "3", "o'clock"]


def test_copy_fraction_by_hand():
    # sample 3-grams: the-cat-sat, cat-sat-on (copied), sat-on-a, on-a-hat (new) -> 2/4
    assert copy_fraction("The cat sat on the mat.", "the cat sat on a hat") == 0.5
    assert copy_fraction("a b c d", "a b c d") == 1.0
    assert copy_fraction("a b c d", "x y z") == 0.0
    assert copy_fraction("a b c", "") == 0.0
    assert copy_fraction("cat sat", "cat sat") == 1.0  # shorter than 3 words: bigrams


def test_sentiment_is_vader_compound():
    assert sentiment("What a wonderful, lovely day!") > 0.5
    assert sentiment("This is terrible and awful.") < -0.5


def test_copy_fraction_counts_ngrams_found_in_the_prompt():
    prompt = "the cat sat on the mat today"
    assert copy_fraction(prompt, "the cat sat on the mat") == 1.0
    assert copy_fraction(prompt, "the cat sat elsewhere now") == pytest.approx(1 / 3)
    assert copy_fraction(prompt, "cat") == 1.0  # short samples use shorter n-grams
    assert copy_fraction(prompt, "cat sat on", n=2) == 1.0
    assert copy_fraction("a b c", "a b d", n=1) == pytest.approx(2 / 3)
