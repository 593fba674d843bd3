"""The summarization demo (``DEMO_TASK=summarization make demo``): real news articles, offline.

The ``gensim`` wheel ships 300 Australian news articles (a few of them twice) as test data
(the Lee corpus, ``gensim/test/test_data/lee_background.cor``, one per line); they are read from the
installed package (the ``summarization`` extra) and never copied into this repository. The
embedded model summarizes them in a sentence after ``TL;DR:``; simulated labelers who prefer
copying label beside people, and the dashboard shows the copied fraction of each policy
version's summaries next to the labelers' copy coefficient (the paper's finding).

No pre-sampled comparisons: the loop samples the first ones from policy v0 when it starts.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

LEE_CORPUS = "test/test_data/lee_background.cor"
SUMMARY_TASK_NAME = "Demo: news summaries (TL;DR)"
EVAL_ARTICLES = 16
"""The last articles of the corpus are the eval split (each policy version summarizes them)."""
SIMULATED_PREFERENCE = "copy"
OPENING_CHARS = 400

SUMMARY_TASK_SETTINGS: dict[str, Any] = {
    "kind": "summarization",
    "status": "active",
    "base_model": "embedded:smollm2-135m",
    "k": 4,
    "query_length": 160,
    "response_length": 32,
    "temperature": 0.7,
    "truncation_token": ".",  # one-sentence summaries on 2 cores (the cpu-summarization preset)
    "truncation_min_position": 8,
    # Like the stylistic demo: the simulated labelers leave a slot of each comparison for
    # a person, and two labels per sampled comparison halve the sampling of long queries.
    "labels_per_comparison": 3,
    "gold_rate": 0.0,
    "label_budget": 400,
    "lease_seconds": 300,
    "highlight_copies": True,
    "training_settings": {"preset": "cpu-summarization"},
    "schedule": {
        "n0": 24,
        "n": 240,
        "episodes": 512,
        "retrains": 6,
        "chunk_episodes": 32,
        "buffer": 16,
    },
}

SUMMARY_INSTRUCTIONS = """\
Pick the best summary of the article (shown on the left, or above on a phone; it scrolls).

- A good summary says what the article is about in a sentence or two, in its own words.
- Spans copied from the article are marked: copying is not wrong, but a summary should summarize.
- Press 1-4 to choose, S to skip if you cannot judge, N if none is acceptable.
"""


class DemoDataMissing(RuntimeError):
    """The articles cannot be read: the ``summarization`` extra is not installed."""


def lee_articles() -> list[str]:
    """The Lee corpus's articles as gensim's wheel ships them (one per line), each story once:
    290 of its 300 lines."""
    try:
        corpus = resources.files("gensim").joinpath(LEE_CORPUS)
        text = corpus.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DemoDataMissing(
            "The summarization demo reads news articles from the gensim wheel: install the "
            "summarization extra (.venv/bin/pip install -e '.[summarization]'; "
            "`DEMO_TASK=summarization make demo` does it)."
        ) from exc
    # The corpus repeats a few stories, some with another ending: one article per opening
    # (two that open alike would give the same query).
    by_opening: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            by_opening.setdefault(line.strip()[:OPENING_CHARS], line.strip())
    return list(by_opening.values())


def articles_jsonl(articles: list[str], *, eval_articles: int = EVAL_ARTICLES) -> bytes:
    """The articles as a source file (``article``, ``id``, ``split``): the last
    ``eval_articles`` are the eval split."""
    first_eval = len(articles) - eval_articles
    lines = [
        json.dumps(
            {"article": text, "id": f"lee-{i}", "split": "eval" if i >= first_eval else "train"}
        )
        for i, text in enumerate(articles)
    ]
    return ("\n".join(lines) + "\n").encode()


def load_summarization_demo(*, labelers: list[Any]) -> tuple[Any, str]:
    """Create the summarization demo task (idempotent) with its articles and labelers; (task,
    a line saying what happened)."""
    import io

    from django.db import transaction

    from labeling.models import Task
    from labeling.services.imports import import_prompts
    from labeling.services.tasks import add_labeler, set_instructions
    from training.services.versions import ensure_base_policy

    articles = lee_articles()  # before any write: a missing extra changes nothing
    with transaction.atomic():
        task, created = Task.objects.get_or_create(
            name=SUMMARY_TASK_NAME, defaults=SUMMARY_TASK_SETTINGS
        )
        if not created:
            return task, f"Summarization demo task {task.pk} exists; logins refreshed."
        set_instructions(task=task, text=SUMMARY_INSTRUCTIONS)
        for user in labelers:
            add_labeler(task=task, labeler=user)
        ensure_base_policy(task=task)
        result = import_prompts(task=task, stream=io.BytesIO(articles_jsonl(articles)))
    return task, (
        f"Summarization demo task {task.pk}: {result.rows} news articles from the gensim wheel "
        f"({result.rows - EVAL_ARTICLES} train, {EVAL_ARTICLES} eval), each cut to "
        f"{task.query_length} tokens at a sentence boundary; comparisons are sampled from "
        "policy v0 when the loop starts."
    )
