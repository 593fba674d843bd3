import random

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Label
from labeling.simulation import (
    prefer_copy,
    prefer_length,
    prefer_novelty,
    prefer_random,
    prefer_sentiment,
)
from labeling.textstats import sentiment
from research.analytics.features import ComparisonView, raw_features
from tests.factories import ComparisonFactory, TaskFactory

RNG = random.Random(0)


def test_sentiment_prefers_the_most_positive_sample():
    samples = ["It was awful and sad.", "It was a wonderful, happy day!", "It was a day."]
    assert prefer_sentiment("Tell me", samples, RNG) == 1
    assert sentiment(samples[1]) > 0.5 > sentiment(samples[2]) > sentiment(samples[0])


def test_length_prefers_the_longest_sample_first_on_ties():
    assert prefer_length("", ["ab", "abcd ", "abcd", "a"], RNG) == 1
    assert prefer_length("", ["xy", "yz"], RNG) == 0


def test_copy_preference_picks_the_most_copied_sample():
    prompt = "the cat sat on the mat today"
    assert prefer_copy(prompt, ["a dog ran", "the cat sat on it"], RNG) == 1


def test_copy_and_novelty_break_3_gram_ties_by_copied_words_not_by_position():
    prompt = "the council approved the new budget on monday"
    samples = ["a storm hit", "budget news today", "the council met", "rain fell"]
    # No sample copies a 3-gram; "the council met" copies 2 of 3 words, "a storm hit" none.
    assert prefer_copy(prompt, samples, RNG) == 2
    assert prefer_novelty(prompt, samples, RNG) == 0
    assert prefer_novelty(prompt, samples[1:], RNG) == 2
    assert prefer_copy(prompt, ["the council approved it", "the council met"], RNG) == 0


def test_the_simulated_copier_prefers_what_the_drift_detector_calls_copied():
    # "don't" is one word for both; a tokenizer that split it would call sample 0 copied too.
    prompt = "we don t stop here"
    samples = ["we don't stop", "we don t stop"]
    copied = raw_features(ComparisonView(prompt, samples, [0, 1]))[:, 2]
    assert list(copied) == [0.0, 1.0]
    assert prefer_copy(prompt, samples, RNG) == 1


def test_random_preference_is_in_range_and_seeded():
    picks = [prefer_random("", ["a", "b", "c"], random.Random(1)) for _ in range(5)]
    assert len(set(picks)) == 1 and 0 <= picks[0] < 3


@pytest.mark.slow
def test_simulate_labelers_labels_through_the_api(live_server, capsys, settings):
    # The live server shares one in-memory SQLite connection between threads: one labeler there.
    postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    labelers = "3" if postgres else "1"
    task = TaskFactory(k=3)
    positive = "What a wonderful, lovely and happy day."
    for _ in range(6):
        ComparisonFactory(task=task, samples=["A bad, awful day.", positive, "A day."])
    call_command(
        "simulate_labelers",
        "--task",
        str(task.pk),
        "--labelers",
        labelers,
        "--preference",
        "sentiment",
        "--url",
        live_server.url,
        "--limit",
        "5",
    )
    assert '"labels": 5' in capsys.readouterr().out
    labels = Label.objects.filter(task=task)
    assert labels.count() == 5
    assert {label.choice for label in labels} == {1}  # the sample index, whatever the order shown
    assert labels.values("labeler").distinct().count() <= int(labelers)
    # Exhausted task: the remaining comparison gets labeled, then the labelers stop.
    call_command(
        "simulate_labelers",
        "--task",
        str(task.pk),
        "--labelers",
        labelers,
        "--url",
        live_server.url,
    )
    assert Label.objects.filter(task=task).count() == 6


def test_simulate_labelers_rejects_a_missing_task(db):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("simulate_labelers", "--task", "999999")
