"""Configuring a summarization task in the admin: a newline truncation token typed as \\n, the
query template checked, copy highlighting; articles imported through the prompt import."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.models import Prompt, Task
from tests.factories import TaskFactory
from tests.labeling.test_admin import add_task, errors_of, form_values, researcher, upload

__all__ = ["researcher"]  # the fixture, shared with test_admin

pytestmark = pytest.mark.django_db


def test_a_summarization_task_with_a_newline_truncation_token(client, researcher):
    response = add_task(
        client,
        kind="summarization",
        truncation_token="\\n",
        query_template="Article: {article}\n\nTL;DR:",
        highlight_copies="on",
        response_length="75",
        truncation_min_position="55",
    )
    assert response.status_code == 302, errors_of(response)
    task = Task.objects.get(name="Positive continuations")
    assert (task.kind, task.truncation_token, task.highlight_copies) == (
        "summarization", "\n", True,
    )  # fmt: skip
    assert task.query_template == "Article: {article}\n\nTL;DR:"
    # The change form shows the newline as it was typed, and saves it unchanged.
    values = form_values(client.get(reverse("admin:labeling_task_change", args=[task.pk])))
    assert values["truncation_token"] == "\\n"
    client.post(reverse("admin:labeling_task_change", args=[task.pk]), values)
    task.refresh_from_db()
    assert task.truncation_token == "\n"


@pytest.mark.parametrize("template", ["TL;DR:", "{article} and {article}"])
def test_the_query_template_needs_the_article_once(client, researcher, template):
    response = add_task(client, query_template=template)
    assert response.status_code == 200
    assert any("{article} exactly once" in e for e in errors_of(response)["query_template"])
    assert not Task.objects.exists()


def test_articles_import_through_the_prompt_import_page(client, researcher, byte_tokenizer_dir):
    task = TaskFactory(kind="summarization", base_model=str(byte_tokenizer_dir), query_length=200)
    url = reverse("admin:labeling_task_import_prompts", args=[task.pk])
    assert "each line is an article" in client.get(url).content.decode()
    body = b'{"article": "One sentence here. Another one.", "highlights": "One."}\n'
    assert client.post(url, {"file": upload("a.jsonl", body)}).status_code == 302
    prompt = Prompt.objects.get(task=task)
    assert prompt.text == "One sentence here. Another one.\n\nTL;DR:"
    assert prompt.reference == "One."
