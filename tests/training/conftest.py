"""Helpers for the training-loop tests (no torch here: see tests/training/ml/ for models)."""

from __future__ import annotations

import pytest

from labeling.models import Comparison, Label, Prompt
from tests.factories import ComparisonFactory, TaskFactory, UserFactory

TINY_PROMPTS = (
    "The movie was good.",
    "The food was bad.",
    "It is a nice day.",
    "Dogs and cats play.",
    "The story was sad.",
    "What a great show.",
)


def tiny_task(base_model: str, *, lease_seconds: int = 600, **schedule):
    """A task on a tiny saved model with the cpu-tiny preset and a short online schedule;
    the last prompt is the eval split."""
    task = TaskFactory(
        base_model=base_model,
        k=4,
        query_length=8,
        response_length=8,
        truncation_min_position=2,
        temperature=1.0,
        lease_seconds=lease_seconds,
        training_settings={"preset": "cpu-tiny", "reward": {"normalization_samples": 8}},
        schedule={
            "n0": 4,
            "n": 8,
            "episodes": 32,
            "retrains": 2,
            "chunk_episodes": 16,
            "buffer": 4,
            **schedule,
        },
    )
    last = len(TINY_PROMPTS) - 1
    for i, text in enumerate(TINY_PROMPTS):
        Prompt.objects.create(task=task, text=text, split="eval" if i == last else "train")
    return task


def save_tiny_model(directory, *, end_boost: float = 3.0) -> str:
    """A tiny GPT-2 with its tokenizer saved in ``directory`` (loadable by path). Its final
    layer norm's bias is moved along the "." embedding, raising that token's logit by about
    ``end_boost`` everywhere: about a third of its 8-token responses end under the tasks'
    truncation rule (a random tiny model ends one in twenty), as a real LM's do."""
    import torch

    from tests.training.ml.conftest import build_model, build_tokenizer
    from training.ml.sampling import truncation_token_ids

    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer))
    with torch.no_grad():
        for token in truncation_token_ids(tokenizer, "."):
            embedding = model.transformer.wte.weight[token]
            model.transformer.ln_f.bias += end_boost * embedding / embedding.norm() ** 2
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def add_labels(task, n: int, *, policy_version=None, choice: int = 0) -> list[Label]:
    """``n`` choice labels on fresh comparisons of ``task``."""
    labeler = UserFactory()
    labels = []
    for _ in range(n):
        comparison = ComparisonFactory(task=task, policy_version=policy_version)
        labels.append(
            Label.objects.create(
                comparison=comparison,
                labeler=labeler,
                task=task,
                kind=Label.Kind.CHOICE,
                choice=choice,
                k=comparison.k,
                display_order=list(range(comparison.k)),
            )
        )
        Comparison.objects.filter(pk=comparison.pk).update(
            label_count=1, status=Comparison.Status.COMPLETE
        )
    return labels


@pytest.fixture
def loop_task(db):
    return TaskFactory(
        schedule={"n0": 2, "n": 6, "episodes": 32, "retrains": 3, "chunk_episodes": 16, "buffer": 3}
    )
