"""The summarization demo: real news articles read from the installed gensim wheel (not from
this repository), imported as queries of the embedded model cut at sentence boundaries."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Prompt, Task
from labeling.summaries import article_of, sentence_ends
from research.demo import summarization
from research.demo.summarization import (
    EVAL_ARTICLES,
    SUMMARY_TASK_NAME,
    SUMMARY_TASK_SETTINGS,
    articles_jsonl,
    lee_articles,
)
from training.models import PolicyVersion


def test_the_lee_corpus_comes_from_the_gensim_wheel():
    articles = lee_articles()
    assert len(articles) == 290  # 300 lines, 10 of them repeats (7 verbatim)
    assert articles[0].startswith("Hundreds of people have been forced to vacate their homes")
    lines = [json.loads(line) for line in articles_jsonl(articles).splitlines()]
    assert [r["split"] for r in lines].count("eval") == EVAL_ARTICLES
    assert lines[0] == {"article": articles[0], "id": "lee-0", "split": "train"}


def test_the_articles_are_not_copied_into_the_repository():
    from pathlib import Path

    first = lee_articles()[0][:60]
    root = Path(__file__).resolve().parents[2]
    for path in [*root.glob("research/**/*"), *root.glob("tests/**/*")]:
        if path.is_file() and path.suffix in {".py", ".jsonl", ".json", ".txt", ".cor"}:
            assert first not in path.read_text(errors="ignore"), path


@pytest.mark.django_db
def test_load_demo_summarization_imports_the_articles_as_queries():
    call_command("load_demo", "--task", "summarization")
    call_command("load_demo", "--task", "summarization")  # idempotent
    task = Task.objects.get(name=SUMMARY_TASK_NAME)
    assert task.kind == "summarization" and task.highlight_copies
    assert (task.truncation_token, task.query_length) == (
        ".",
        SUMMARY_TASK_SETTINGS["query_length"],
    )
    prompts = Prompt.objects.filter(task=task)
    assert prompts.count() == 290 and prompts.filter(split="eval").count() == EVAL_ARTICLES
    cut = 0
    for prompt in prompts:
        assert 0 < len(prompt.token_ids) <= task.query_length
        body = article_of(prompt.text, task.query_template)
        assert prompt.text == body + "\n\nTL;DR:" and prompt.source.startswith(body)
        if body != prompt.source:  # cut: at the end of a sentence of the article
            cut += 1
            assert len(body) in sentence_ends(prompt.source)
    assert cut > 200  # most articles are longer than 160 tokens
    assert PolicyVersion.objects.get(task=task, number=0).status == "promoted"
    assert set(task.labelers.values_list("username", flat=True)) == {"alice", "bob"}


@pytest.mark.django_db
def test_without_the_extra_the_demo_says_how_to_install_it(monkeypatch):
    def missing(package):
        raise ModuleNotFoundError(f"No module named {package!r}")

    monkeypatch.setattr(resources, "files", missing)
    with pytest.raises(CommandError, match=r"summarization extra"):
        call_command("load_demo", "--task", "summarization")
    assert not Task.objects.filter(name=summarization.SUMMARY_TASK_NAME).exists()


@pytest.mark.django_db
def test_run_demo_needs_the_summarization_task_loaded(capsys):
    with pytest.raises(SystemExit) as info:
        call_command("run_demo", "--task", "summarization")
    assert info.value.code == 1
    assert "load_demo --task summarization" in capsys.readouterr().err
