"""Importing a summarization task's articles: the common file shapes, queries cut to the
budget at a sentence boundary with their token ids, all or nothing."""

from __future__ import annotations

import io
import json

import pytest

from labeling.importers import ImportFileError
from labeling.models import Prompt, Task
from labeling.services.imports import import_prompts
from labeling.services.sources import import_sources
from labeling.summaries import article_of
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db

ARTICLE = (
    "Bushfires forced hundreds of people from their homes today. Strong winds pushed the "
    "fire towards the town. Authorities closed the highway overnight."
)


def jsonl(*rows: dict) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


@pytest.fixture
def task(byte_tokenizer_dir):
    # The byte-level tokenizer: one token per byte, so the budget counts bytes.
    return TaskFactory(kind=Task.Kind.SUMMARIZATION, base_model=str(byte_tokenizer_dir), k=2)


@pytest.mark.parametrize(
    ("text_key", "reference_key"),
    [("article", "highlights"), ("document", "summary"), ("text", "reference")],
)
def test_the_common_shapes_import_with_their_references(task, encode, text_key, reference_key):
    task.query_length = 400
    task.save()
    stream = jsonl(
        {text_key: ARTICLE, reference_key: "Fires forced people out.", "id": "a1"},
        {text_key: "A second, short article.", "split": "eval"},
    )
    result = import_prompts(task=task, stream=stream)
    assert result.rows == result.prompts_created == 2
    first, second = Prompt.objects.order_by("id")
    assert first.text == ARTICLE + "\n\nTL;DR:"
    assert first.source == ARTICLE and first.reference == "Fires forced people out."
    assert first.token_ids == encode(first.text) and first.external_id == "a1"
    assert (second.reference, second.split) == ("", "eval")


def test_a_long_article_is_cut_at_a_sentence_boundary_to_the_query_length(task, encode):
    suffix = "\n\nTL;DR:"
    task.query_length = len(ARTICLE) - 20  # bytes: the last sentence does not fit
    task.save()
    import_prompts(task=task, stream=jsonl({"article": ARTICLE}))
    prompt = Prompt.objects.get()
    body = article_of(prompt.text, task.query_template)
    assert body == "Bushfires forced hundreds of people from their homes today. Strong winds " \
        "pushed the fire towards the town."  # fmt: skip
    assert prompt.text == body + suffix
    assert len(prompt.token_ids) <= task.query_length and prompt.token_ids == encode(prompt.text)
    assert prompt.source == ARTICLE  # kept whole


def test_csv_and_the_task_template(task):
    task.query_template = "Article:\n{article}\nOne-line summary:"
    task.query_length = 400
    task.save()
    csv = (
        "document,summary,split\r\n"
        '"' + ARTICLE + '",Fires.,train\r\n'
        '"Another story, told briefly.",,eval\r\n'
    ).encode()
    import_sources(task=task, stream=io.BytesIO(csv), file_format="csv")
    first, second = Prompt.objects.order_by("id")
    assert first.text == "Article:\n" + ARTICLE + "\nOne-line summary:"
    assert (first.reference, second.reference, second.split) == ("Fires.", "", "eval")


@pytest.mark.parametrize(
    ("rows", "line", "phrase"),
    [
        ([{"article": ARTICLE}, {"article": ARTICLE}], 2, "duplicate article"),
        ([{"article": ARTICLE}, {"articel": "typo"}], 2, "did you mean 'article'"),
        ([{"article": ARTICLE}, {"article": "x", "document": "y"}], 2, "not both"),
        ([{"article": ARTICLE}, {"highlights": "no article"}], 2, "missing field 'article'"),
        ([{"article": ARTICLE}, {"article": "ok", "split": "test"}], 2, "'split'"),
    ],
)
def test_a_bad_line_imports_nothing_and_is_named(task, rows, line, phrase):
    with pytest.raises(ImportFileError) as info:
        import_prompts(task=task, stream=jsonl(*rows))
    assert info.value.line == line and phrase in str(info.value)
    assert not Prompt.objects.exists()


def test_two_articles_with_the_same_query_and_a_budget_too_small(task):
    task.query_length = 70
    task.save()
    same_start = ARTICLE.split(". ")[0] + ". A different ending follows here at length."
    with pytest.raises(ImportFileError, match="same as line 1's") as info:
        import_prompts(task=task, stream=jsonl({"article": ARTICLE}, {"article": same_start}))
    assert info.value.line == 2
    task.query_length = 10
    task.save()
    with pytest.raises(ImportFileError, match="not even the first word") as info:
        import_prompts(task=task, stream=jsonl({"article": ARTICLE}))
    assert info.value.line == 1 and not Prompt.objects.exists()


def test_existing_prompts_are_not_imported_twice(task):
    import_prompts(task=task, stream=jsonl({"article": ARTICLE, "id": "a1"}))
    with pytest.raises(ImportFileError, match="already exists"):
        import_prompts(task=task, stream=jsonl({"article": "Other text.", "id": "a1"}))
    with pytest.raises(ImportFileError, match="query already exists"):
        import_prompts(task=task, stream=jsonl({"article": ARTICLE}))
    assert Prompt.objects.count() == 1


def test_no_tokenizer_no_import_and_only_summarization_tasks():
    task = TaskFactory(kind=Task.Kind.SUMMARIZATION, base_model="/nonexistent/model")
    with pytest.raises(ImportFileError, match="cannot be cut to the query length"):
        import_prompts(task=task, stream=jsonl({"article": ARTICLE}))
    with pytest.raises(ImportFileError, match="summarization tasks"):
        import_sources(task=TaskFactory(), stream=jsonl({"article": ARTICLE}))
    assert not Prompt.objects.exists()
