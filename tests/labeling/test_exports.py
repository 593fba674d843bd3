"""The three export formats, bounded streaming, and the pairwise format read by `datasets`."""

from __future__ import annotations

import json

import pytest

from labeling import exports
from labeling.models import Label, Task
from labeling.services.labels import submit_label
from labeling.services.leasing import lease_next
from tests.factories import (
    ComparisonFactory,
    InstructionsFactory,
    TaskFactory,
    TaskLabelerFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled_task() -> Task:
    """Three comparisons (K=3) with token ids: labels choice 2, skip, none."""
    task = TaskFactory(k=3)
    InstructionsFactory(task=task, version=7)
    for i in range(3):
        comparison = ComparisonFactory(task=task, sample_token_ids=[[i, 1], [i, 2], [i, 3]])
        comparison.prompt.token_ids = [10 + i, 20 + i]
        comparison.prompt.save()
    user = UserFactory(username="ada")
    TaskLabelerFactory(task=task, labeler=user)
    for kind, choice in (("choice", 2), ("skip", None), ("none", None)):
        assignment = lease_next(task=task, labeler=user)
        submit_label(
            labeler=user,
            comparison_id=assignment.comparison_id,
            kind=kind,
            choice=choice,
            time_spent_ms=42,
        )
    return task


def test_paper_format(labeled_task):
    rows = list(exports.paper_rows(task=labeled_task))
    assert len(rows) == 1
    label = Label.objects.get(kind="choice")
    comparison = label.comparison
    assert rows[0] == {
        "comparison_id": comparison.pk,
        "query": comparison.prompt.text,
        "query_token_ids": comparison.prompt.token_ids,
        "sample0": comparison.samples[0],
        "sample1": comparison.samples[1],
        "sample2": comparison.samples[2],
        "sample_token_ids": comparison.sample_token_ids,
        "sample_ended": None,  # not known (the factory's comparisons say nothing)
        "best": 2,
        "selection": "uniform",
    }
    comparison.sample_ended = [True, False, True]
    comparison.selection = "uncertainty"
    comparison.save()
    row = next(exports.paper_rows(task=labeled_task))
    assert (row["sample_ended"], row["selection"]) == ([True, False, True], "uncertainty")


def test_pairwise_format(labeled_task):
    rows = list(exports.pairwise_rows(task=labeled_task))
    comparison = Label.objects.get(kind="choice").comparison
    assert rows == [
        {
            "prompt": comparison.prompt.text,
            "chosen": comparison.samples[2],
            "rejected": comparison.samples[i],
        }
        for i in (0, 1)
    ]


def test_raw_format_has_every_label(labeled_task):
    rows = list(exports.raw_rows(task=labeled_task))
    assert [r["kind"] for r in rows] == ["choice", "skip", "none"]
    first = rows[0]
    assert set(first) == {
        "label_id", "comparison_id", "task_id", "labeler", "kind", "choice", "display_order",
        "copies_highlighted", "time_spent_ms", "instructions_version", "policy_version", "is_gold",
        "selection", "created_at",
    }  # fmt: skip
    assert (first["labeler"], first["choice"], first["time_spent_ms"]) == ("ada", 2, 42)
    assert (first["instructions_version"], first["policy_version"], first["is_gold"]) == (
        7,
        None,
        False,
    )
    assert sorted(first["display_order"]) == [0, 1, 2]
    assert first["selection"] == "uniform"
    json.dumps(rows)  # JSON-serializable as is


def test_exports_stream_in_chunks(labeled_task, django_assert_max_num_queries):
    """With chunk_size=1 each label is its own fetch: nothing is loaded up front."""
    rows = exports.raw_rows(task=labeled_task, chunk_size=1)
    with django_assert_max_num_queries(1):
        next(rows)
    assert len(list(rows)) == 2


def test_pairwise_export_loads_with_datasets(labeled_task, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    path = tmp_path / "pairwise.jsonl"
    with path.open("w") as f:
        for row in exports.pairwise_rows(task=labeled_task):
            f.write(json.dumps(row) + "\n")
    dataset = datasets.load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert dataset.column_names == ["prompt", "chosen", "rejected"]
    assert dataset.num_rows == 2
    assert dataset[0]["chosen"] == Label.objects.get(kind="choice").comparison.samples[2]
