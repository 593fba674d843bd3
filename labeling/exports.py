"""Label exports as generators of dicts, streamed in bounded memory.

Each format walks the task's labels with ``iterator(chunk_size=...)`` and ``select_related``,
so a million labels export with one query per chunk and a constant amount of memory.

- ``paper``: the format of Ziegler et al. (2019): one row per ``choice`` label with the query,
  the K samples, their token ids, whether each ended under the truncation rule (null: not
  known), the index of the best one and how the comparison was chosen (``selection``:
  ``uniform`` or ``uncertainty``; keep to ``uniform`` for the paper's online distribution).
- ``pairwise``: ``{"prompt", "chosen", "rejected"}``, K-1 rows per ``choice`` label (the chosen
  sample against each other one), as TRL and ``datasets`` read it.
- ``raw``: every label with who gave it, how it was shown and under which instructions, and
  how its comparison was chosen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from labeling.models import Label, Task

CHUNK_SIZE = 2000

Row = dict[str, Any]


def _choice_labels(task: Task) -> QuerySet[Label]:
    return (
        Label.objects.filter(task=task, kind=Label.Kind.CHOICE)
        .select_related("comparison__prompt")
        .order_by("id")
    )


def paper_rows(*, task: Task, chunk_size: int = CHUNK_SIZE) -> Iterator[Row]:
    for label in _choice_labels(task).iterator(chunk_size=chunk_size):
        comparison = label.comparison
        row: Row = {
            "comparison_id": comparison.pk,
            "query": comparison.prompt.text,
            "query_token_ids": comparison.prompt.token_ids,
        }
        for i, sample in enumerate(comparison.samples):
            row[f"sample{i}"] = sample
        row["sample_token_ids"] = comparison.sample_token_ids
        row["sample_ended"] = comparison.sample_ended
        row["best"] = label.choice
        row["selection"] = comparison.selection
        yield row


def pairwise_rows(*, task: Task, chunk_size: int = CHUNK_SIZE) -> Iterator[Row]:
    for label in _choice_labels(task).iterator(chunk_size=chunk_size):
        comparison = label.comparison
        samples = comparison.samples
        chosen = samples[label.choice]
        for i, rejected in enumerate(samples):
            if i != label.choice:
                yield {"prompt": comparison.prompt.text, "chosen": chosen, "rejected": rejected}


def raw_rows(*, task: Task, chunk_size: int = CHUNK_SIZE) -> Iterator[Row]:
    labels = (
        Label.objects.filter(task=task)
        .select_related("labeler", "instructions_version", "comparison__policy_version")
        .only(
            "id",
            "comparison_id",
            "task_id",
            "kind",
            "choice",
            "display_order",
            "copies_highlighted",
            "time_spent_ms",
            "created_at",
            "labeler__username",
            "instructions_version__version",
            "comparison__is_gold",
            "comparison__selection",
            "comparison__policy_version__number",
        )
        .order_by("id")
    )
    for label in labels.iterator(chunk_size=chunk_size):
        instructions = label.instructions_version
        policy = label.comparison.policy_version
        yield {
            "label_id": label.pk,
            "comparison_id": label.comparison_id,
            "task_id": label.task_id,
            "labeler": label.labeler.get_username(),
            "kind": label.kind,
            "choice": label.choice,
            "display_order": label.display_order,
            "copies_highlighted": label.copies_highlighted,
            "time_spent_ms": label.time_spent_ms,
            "instructions_version": instructions.version if instructions else None,
            "policy_version": policy.number if policy else None,
            "is_gold": label.comparison.is_gold,
            "selection": label.comparison.selection,
            "created_at": label.created_at.isoformat(),
        }


FORMATS: dict[str, Callable[..., Iterator[Row]]] = {
    "paper": paper_rows,
    "pairwise": pairwise_rows,
    "raw": raw_rows,
}


def jsonl_lines(rows: Iterable[Row]) -> Iterator[str]:
    """Rows as JSON Lines: one object per line, non-ASCII text as is."""
    for row in rows:
        yield json.dumps(row, cls=DjangoJSONEncoder, ensure_ascii=False) + "\n"


def jsonl_response(*, task: Task, export_format: str) -> StreamingHttpResponse:
    """A download of the task's labels in ``export_format`` (one of FORMATS), streamed."""
    rows = FORMATS[export_format](task=task)
    response = StreamingHttpResponse(jsonl_lines(rows), content_type="application/jsonl")
    filename = f"task-{task.pk}-{export_format}.jsonl"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
