"""All-or-nothing imports of a summarization task's sources: articles, each with an optional
reference summary, become prompts whose text is the query the model reads.

Each article is put into the task's ``query_template`` and cut to its ``query_length`` tokens
at a sentence boundary (:func:`labeling.summaries.fit_query`), counted with the base model's
tokenizer (:mod:`labeling.tokens`, no torch). The prompt keeps the query's token ids (the
sampler reads them as they are), the article as imported (``source``) and the reference.
The first bad line raises :class:`ImportFileError` naming it and nothing is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from django.db import transaction

from labeling import tokens
from labeling.importers import ImportFileError
from labeling.models import Prompt, Task
from labeling.services.imports import BATCH_SIZE, ImportResult, batches
from labeling.source_importers import SourceRow, parse_sources_csv, parse_sources_jsonl
from labeling.summaries import QueryTooLong, fit_query


@transaction.atomic
def import_sources(
    *,
    task: Task,
    stream: IO[bytes],
    file_format: str = "jsonl",
    split: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import articles as prompts of a summarization task (one prompt per row).
    ``split`` (train/eval) applies to rows that do not name their own."""
    if task.kind != Task.Kind.SUMMARIZATION:
        raise ImportFileError("articles are imported into summarization tasks")
    if split is not None and split not in Prompt.Split.values:
        raise ImportFileError(f"split must be one of {', '.join(Prompt.Split.values)}")
    if file_format not in ("jsonl", "csv"):
        raise ImportFileError(f"unsupported format {file_format!r}: use jsonl or csv")
    rows = parse_sources_csv(stream) if file_format == "csv" else parse_sources_jsonl(stream)
    vocabulary: tokens.Vocabulary | None = None
    queries: dict[str, int] = {}  # query text -> line, within the file
    total = 0
    for batch in batches(rows, BATCH_SIZE):
        if vocabulary is None:
            try:
                vocabulary = tokens.vocabulary_for(task.base_model)
            except tokens.TokenizerUnavailable as exc:
                raise ImportFileError(
                    f"the articles cannot be cut to the query length ({exc})", batch[0].line
                ) from None
        prompts = [_prompt(task, row, vocabulary, queries, split) for row in batch]
        _check_new(task, batch, prompts)
        Prompt.objects.bulk_create(prompts, batch_size=BATCH_SIZE)
        total += len(batch)
        if progress:
            progress(total)
    if total == 0:
        raise ImportFileError("the file has no rows")
    return ImportResult(rows=total, prompts_created=total)


def _prompt(
    task: Task,
    row: SourceRow,
    vocabulary: tokens.Vocabulary,
    queries: dict[str, int],
    split: str | None,
) -> Prompt:
    try:
        fitted = fit_query(
            row.article,
            task.query_template,
            task.query_length,
            lambda text: len(vocabulary.encode(text)),
        )
    except (QueryTooLong, ValueError) as exc:
        raise ImportFileError(str(exc), row.line) from None
    first = queries.setdefault(fitted.text, row.line)
    if first != row.line:
        raise ImportFileError(
            f"this article's query (cut to {task.query_length} tokens) is the same as line "
            f"{first}'s",
            row.line,
        )
    return Prompt(
        task=task,
        text=fitted.text,
        token_ids=vocabulary.encode(fitted.text),
        source=row.article.strip(),
        reference=row.reference,
        external_id=row.external_id,
        split=row.split or split or Prompt.Split.TRAIN,
    )


def _check_new(task: Task, batch: list[SourceRow], prompts: list[Prompt]) -> None:
    existing = Prompt.objects.filter(task=task)
    ids = {row.external_id for row in batch if row.external_id}
    taken_ids = set(existing.filter(external_id__in=ids).values_list("external_id", flat=True))
    taken_texts = set(
        existing.filter(text__in={p.text for p in prompts}).values_list("text", flat=True)
    )
    for row, prompt in zip(batch, prompts, strict=True):
        if row.external_id in taken_ids:
            raise ImportFileError(
                f"duplicate: article id {row.external_id!r} already exists in this task", row.line
            )
        if prompt.text in taken_texts:
            raise ImportFileError(
                "duplicate: this article's query already exists in this task", row.line
            )
