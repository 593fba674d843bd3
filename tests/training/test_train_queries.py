"""PPO's queries: the token ids the sampler used when every train prompt has them, else texts."""

from __future__ import annotations

import pytest

from tests.factories import PromptFactory, TaskFactory
from training.selectors import train_queries

pytestmark = pytest.mark.django_db


def test_token_ids_when_every_train_prompt_has_them():
    task = TaskFactory(kind="summarization")
    PromptFactory(task=task, text="first\n\nTL;DR:", token_ids=[5, 6, 7])
    PromptFactory(task=task, text="second\n\nTL;DR:", token_ids=[8, 9])
    PromptFactory(task=task, text="an eval one", token_ids=None, split="eval")
    assert train_queries(task_id=task.pk) == [[5, 6, 7], [8, 9]]


def test_texts_when_any_train_prompt_lacks_them():
    task = TaskFactory()
    PromptFactory(task=task, text="one", token_ids=[1])
    PromptFactory(task=task, text="two", token_ids=None)
    assert train_queries(task_id=task.pk) == ["one", "two"]
    assert train_queries(task_id=TaskFactory().pk) == []
