"""Copying made visible for summarization tasks: per policy version the copied fraction,
length and ROUGE of its eval summaries, the labelers' copy coefficient beside them, flags, and
the sample browser's article with copied spans marked."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from labeling.models import Prompt, Task
from research.analytics.drift import DriftReport
from research.selectors import task_drift
from research.summaries import copying_flags, marked, summary_stats, version_stats
from tests.factories import PromptFactory, TaskFactory, UserFactory
from tests.research.factories import populate_task
from training.models import EvalSample, PolicyVersion

pytestmark = pytest.mark.django_db

ARTICLES = [
    (
        "The council approved a new bridge over the river on Tuesday. Work starts in May.",
        "Council approves river bridge; work starts in May.",
    ),
    (
        "Heavy rain flooded the old market and closed three roads in the town centre.",
        "Rain floods market, closes roads.",
    ),
    (
        "The local team won the final after a late goal from its youngest player.",
        "Late goal from youngest player wins the final.",
    ),
]


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()


def test_version_stats_by_hand():
    query = "the cat sat on the mat today\n\nTL;DR:"
    rows = [
        (query, "the cat sat on the mat", "the cat sat on the mat", [1, 2, 3], True),
        (query, "", "a dog ran far away", [4, 5], False),
    ]
    scorer = pytest.importorskip("rouge_score.rouge_scorer").RougeScorer(
        ["rouge1", "rouge2", "rougeL"], use_stemmer=True
    )
    stats = version_stats(3, rows, scorer)
    assert (stats.version, stats.samples, stats.references) == (3, 2, 1)
    assert stats.copied == pytest.approx(0.5) and stats.novelty == pytest.approx(0.5)
    assert stats.words == pytest.approx(5.5) and stats.tokens == pytest.approx(2.5)
    assert stats.ended == pytest.approx(0.5)
    assert stats.rouge == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}  # the one reference
    assert version_stats(3, rows, None).rouge == {}  # without rouge-score: no ROUGE


def test_marked_segments_cover_the_text():
    text = "Yes, the cat sat on the mat, said Tom."
    segments = marked("the cat sat on the mat", text)
    assert "".join(piece for piece, _ in segments) == text
    assert [piece for piece, copied in segments if copied] == ["the cat sat on the mat"]


@pytest.fixture
def summarization_task():
    """Labelers who reward copying, policy v0 writing novel summaries and v1 copying ones."""
    task = TaskFactory(kind=Task.Kind.SUMMARIZATION)
    populate_task(task, preferences={"ann": "copy", "bob": "copy"}, comparisons=60)
    EvalSample.objects.all().delete()
    Prompt.objects.filter(task=task, split=Prompt.Split.EVAL).delete()
    base, tuned = PolicyVersion.objects.filter(task=task).order_by("number")
    for article, reference in ARTICLES:
        prompt = PromptFactory(
            task=task,
            text=article + "\n\nTL;DR:",
            source=article,
            reference=reference,
            split=Prompt.Split.EVAL,
        )
        EvalSample.objects.create(policy_version=base, prompt=prompt, text=reference, ended=True)
        EvalSample.objects.create(
            policy_version=tuned, prompt=prompt, text=article.split(". ")[0], ended=True
        )
    return task


def test_the_policy_copying_more_and_labelers_rewarding_it_are_flagged(summarization_task):
    stats = summary_stats(task=summarization_task)
    assert [s.version for s in stats] == [0, 1]
    assert stats[1].copied == 1.0 and stats[0].copied < 0.5
    assert stats[0].references == 3 and stats[0].rouge["rouge1"] == pytest.approx(1.0)
    assert stats[1].rouge["rouge1"] < stats[0].rouge["rouge1"]
    flags = copying_flags(stats, task_drift(task=summarization_task))
    assert any(f.startswith("Labelers overall reward copying") for f in flags), flags
    assert any("The policy copies more" in f and "v1" in f for f in flags), flags
    # Neither flag without the evidence: no drift report, versions that copy alike.
    assert copying_flags(stats[:1], DriftReport(n=0, overall=None)) == []


def test_dashboard_card_and_sample_browser(client, summarization_task):
    client.force_login(UserFactory(is_staff=True))
    task = summarization_task
    page = client.get(reverse("dashboard:task", args=[task.pk])).content.decode()
    assert 'id="summaries"' in page and 'id="summary-table"' in page
    assert "reward copying from the article" in page and "The policy copies more" in page
    assert "labelers&#x27; copy coefficient" in page or "labelers' copy coefficient" in page
    browser = client.get(reverse("dashboard:samples", args=[task.pk]) + "?a=0&b=1")
    html = browser.content.decode()
    assert browser.status_code == 200 and "<th>Article</th>" in html
    assert "TL;DR" not in html.split('id="side-by-side"')[1]  # the article, not the query
    assert (
        '<mark class="copied">The council approved a new bridge over the river on Tuesday' in html
    )


def test_a_continuation_task_has_no_summaries_card(client):
    client.force_login(UserFactory(is_staff=True))
    task = TaskFactory()
    page = client.get(reverse("dashboard:task", args=[task.pk])).content.decode()
    assert 'id="summaries"' not in page
