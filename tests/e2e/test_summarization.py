"""A summarization task end to end on a tiny model, through a real Celery worker (with beat),
real Redis and the test PostgreSQL database: articles imported (cut to the query length at a
sentence boundary) -> comparisons the API serves with their article -> labels from simulated
labelers who prefer copying -> reward model -> policy -> summaries of the eval articles from
the new version, with their copied fraction on the dashboard."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from django.urls import reverse

from labeling.models import Comparison, Label, Prompt, Task
from labeling.services.imports import import_prompts
from labeling.simulation import RunOptions, ensure_simulated_labelers, run_simulation
from research.summaries import summary_stats
from tests.e2e.test_loop import e2e_broker, tiny_model_path, wait_for, workers
from tests.factories import TaskFactory, UserFactory
from training.models import EvalSample, PolicyVersion, TrainingRun

__all__ = ["e2e_broker", "tiny_model_path", "workers"]  # fixtures shared with test_loop

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

# Sentences in the tiny tokenizer's words, so that a query holds several of them.
SENTENCES = [
    "The movie was good.",
    "I liked it a lot.",
    "The food was bad.",
    "We left early.",
    "It is a nice day.",
    "The sun is out.",
    "What a great show.",
    "Everyone was happy.",
    "The story was sad.",
    "Nobody smiled.",
    "Dogs and cats play in the park.",
]


def articles(n: int) -> list[str]:
    return [" ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(6)) for i in range(n)]


def test_articles_to_summaries_from_a_new_policy(tiny_model_path, workers, live_server):
    task = TaskFactory(
        kind=Task.Kind.SUMMARIZATION,
        base_model=tiny_model_path,
        k=4,
        query_length=40,
        response_length=8,
        truncation_min_position=2,
        temperature=1.0,
        lease_seconds=60,
        training_settings={"preset": "cpu-tiny", "reward": {"normalization_samples": 8}},
        schedule={"n0": 4, "n": 8, "episodes": 32, "retrains": 2, "chunk_episodes": 16,
                  "buffer": 6},
    )  # fmt: skip
    rows = [
        {"article": text, "highlights": text.split(". ")[0] + ".", "id": f"a{i}"}
        | ({"split": "eval"} if i >= 8 else {})
        for i, text in enumerate(articles(10))
    ]
    stream = io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    assert import_prompts(task=task, stream=stream).rows == 10
    for prompt in Prompt.objects.filter(task=task):
        article = prompt.text.removesuffix("\n\nTL;DR:")
        assert article != prompt.text and prompt.source.startswith(article)
        assert len(article) < len(prompt.source) and article.endswith(".")  # cut at a sentence
        assert len(prompt.token_ids) <= 40

    workers.start("all", "default,sampling,training", beat=True)
    wait_for(
        lambda: Comparison.objects.filter(task=task).exists(), 90, "first comparisons", workers
    )
    # The API serves a comparison with its article (the query without the template).
    client_user = UserFactory()
    task.memberships.create(labeler=client_user)
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(client_user)
    lease = api.get(f"/api/v1/tasks/{task.pk}/next/").json()
    assert lease["article"] and "TL;DR" not in lease["article"]
    assert lease["prompt"] == lease["article"] + "\n\nTL;DR:"

    names = ensure_simulated_labelers(task=task, count=2)
    options = RunOptions(
        base_url=live_server.url,
        task_id=task.pk,
        preference="copy",
        idle_timeout=600,
        poll_interval=0.5,
        deadline=time.monotonic() + 300,
    )
    labelers = threading.Thread(target=run_simulation, args=(options, names), daemon=True)
    labelers.start()

    def new_policy_answers():
        version = PolicyVersion.objects.filter(task=task, number__gte=1).first()
        if version is None or not EvalSample.objects.filter(policy_version=version).exists():
            return None
        return version

    version = wait_for(new_policy_answers, 300, "eval summaries from policy v1", workers)
    options.deadline = time.monotonic()
    labelers.join(timeout=30)

    assert Label.objects.filter(task=task, kind="choice").count() >= 4
    assert TrainingRun.objects.filter(task=task, kind="reward", status="succeeded").exists()
    assert version.reward_model_version is not None
    answers = EvalSample.objects.filter(policy_version=version).select_related("prompt")
    assert {a.prompt.split for a in answers} == {"eval"} and answers.count() == 2
    assert all(a.token_ids for a in answers)
    stats = {s.version: s for s in summary_stats(task=task)}
    assert version.number in stats and stats[version.number].samples == 2
    assert stats[version.number].references == 2  # ROUGE against the highlights
    staff = UserFactory(is_staff=True)
    from django.test import Client

    page = Client()
    page.force_login(staff)
    html = page.get(reverse("dashboard:task", args=[task.pk])).content.decode()
    assert 'id="summary-table"' in html and f"<td>v{version.number}</td>" in html
    failed = list(TrainingRun.objects.filter(task=task, status="failed").values_list("error"))
    assert not failed, f"{failed}\n{workers.logs()}"
