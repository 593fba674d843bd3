"""All-or-nothing imports of prompts and comparisons into a task.

Rows are parsed and validated line by line (:mod:`labeling.importers`) and written in
batches inside one transaction: the first bad line raises :class:`ImportFileError` naming
it, and the transaction rolls back, so a file imports completely or not at all. Memory
stays bounded by the batch size (plus a digest per row for duplicate detection).

Token ids are checked against the task's tokenizer (:mod:`labeling.tokens`), loaded at the
first line that has any: ids outside its vocabulary, or that do not decode to their text,
reject the line, and so does any token id when the tokenizer cannot be had. A line whose
prompt exists in the task already must not give it other token ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar

from django.db import transaction

from labeling import tokens
from labeling.importers import (
    ComparisonRow,
    ImportFileError,
    PromptRow,
    parse_comparisons_jsonl,
    parse_prompts_csv,
    parse_prompts_jsonl,
)
from labeling.models import Comparison, Prompt, Task

BATCH_SIZE = 1000
Progress = Callable[[int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class ImportResult:
    rows: int
    prompts_created: int
    comparisons_created: int = 0


class _TokenCheck:
    """Checks token ids against the task's tokenizer, loaded at the first line with any."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self._vocabulary: tokens.Vocabulary | None = None

    def _load(self, line: int) -> tokens.Vocabulary:
        if self._vocabulary is None:
            try:
                self._vocabulary = tokens.vocabulary_for(self.task.base_model)
            except tokens.TokenizerUnavailable as exc:
                raise ImportFileError(
                    f"token ids cannot be checked ({exc}): import the file without token ids, "
                    "or make the tokenizer available",
                    line,
                ) from None
        return self._vocabulary

    def check(
        self, ids: list[int] | None, text: str, name: str, line: int, *, prompt: bool = False
    ) -> None:
        if ids is None:
            return
        cut_at = self.task.query_length if prompt else None
        problem = self._load(line).problem(ids, text, cut_at=cut_at)
        if problem:
            raise ImportFileError(f"'{name}': {problem}", line)

    def comparison(self, row: ComparisonRow) -> None:
        self.check(row.prompt_token_ids, row.prompt, "prompt_token_ids", row.line, prompt=True)
        for i, ids in enumerate(row.sample_token_ids or []):
            self.check(ids, row.samples[i], f"sample_token_ids[{i}]", row.line)


def batches(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@transaction.atomic
def import_prompts(
    *,
    task: Task,
    stream: IO[bytes],
    file_format: str = "jsonl",
    split: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import prompts; ``split`` (train/eval) applies to rows that do not name their own.
    A summarization task's prompts are its articles (``labeling.services.sources``)."""
    if task.kind == Task.Kind.SUMMARIZATION:
        from labeling.services.sources import import_sources  # it imports this module

        return import_sources(
            task=task, stream=stream, file_format=file_format, split=split, progress=progress
        )
    if split is not None and split not in Prompt.Split.values:
        raise ImportFileError(f"split must be one of {', '.join(Prompt.Split.values)}")
    if file_format not in ("jsonl", "csv"):
        raise ImportFileError(f"unsupported format {file_format!r}: use jsonl or csv")
    rows = parse_prompts_csv(stream) if file_format == "csv" else parse_prompts_jsonl(stream)
    token_check = _TokenCheck(task)
    total = 0
    for batch in batches(rows, BATCH_SIZE):
        for row in batch:
            token_check.check(row.token_ids, row.text, "token_ids", row.line, prompt=True)
        _check_prompts_are_new(task, batch)
        Prompt.objects.bulk_create(
            [
                Prompt(
                    task=task,
                    text=row.text,
                    token_ids=row.token_ids,
                    external_id=row.external_id,
                    split=row.split or split or Prompt.Split.TRAIN,
                )
                for row in batch
            ],
            batch_size=BATCH_SIZE,
        )
        total += len(batch)
        if progress:
            progress(total)
    if total == 0:
        raise ImportFileError("the file has no rows")
    return ImportResult(rows=total, prompts_created=total)


def _check_prompts_are_new(task: Task, batch: list[PromptRow]) -> None:
    ids = {row.external_id for row in batch if row.external_id}
    taken_ids = set(
        Prompt.objects.filter(task=task, external_id__in=ids).values_list("external_id", flat=True)
    )
    taken_texts = set(
        Prompt.objects.filter(task=task, text__in={row.text for row in batch}).values_list(
            "text", flat=True
        )
    )
    for row in batch:
        if row.external_id in taken_ids:
            raise ImportFileError(
                f"duplicate: prompt id {row.external_id!r} already exists in this task", row.line
            )
        if row.text in taken_texts:
            raise ImportFileError(
                "duplicate: this prompt text already exists in this task", row.line
            )


@transaction.atomic
def import_comparisons(
    *, task: Task, stream: IO[bytes], progress: Progress | None = None
) -> ImportResult:
    """Import comparisons of K samples; prompts are matched by id (or text) or created.
    A row's ``policy_version`` is the number of one of the task's policy versions. Samples
    that did not end are kept as the file gives them (``sample_ended``, or null)."""
    versions = _policy_version_ids(task)
    resolver = _PromptResolver(task)
    token_check = _TokenCheck(task)
    total = 0
    for batch in batches(parse_comparisons_jsonl(stream, k=task.k), BATCH_SIZE):
        for row in batch:
            token_check.comparison(row)
        prompts = resolver.resolve(batch)
        _check_comparisons_are_new(task, batch, prompts)
        objects = []
        for row, prompt_id in zip(batch, prompts, strict=True):
            if row.policy_version is not None and row.policy_version not in versions:
                raise ImportFileError(
                    f"policy version {row.policy_version} does not exist for this task", row.line
                )
            objects.append(
                Comparison(
                    task=task,
                    prompt_id=prompt_id,
                    k=task.k,
                    samples=row.samples,
                    sample_token_ids=row.sample_token_ids,
                    sample_ended=row.sample_ended,
                    policy_version_id=(
                        versions[row.policy_version] if row.policy_version is not None else None
                    ),
                    overlap=task.labels_per_comparison,
                    open_slots=task.labels_per_comparison,
                    is_gold=row.gold_choice is not None,
                    gold_choice=row.gold_choice,
                )
            )
        Comparison.objects.bulk_create(objects, batch_size=BATCH_SIZE)
        total += len(batch)
        if progress:
            progress(total)
    if total == 0:
        raise ImportFileError("the file has no rows")
    return ImportResult(rows=total, prompts_created=resolver.created, comparisons_created=total)


def _policy_version_ids(task: Task) -> dict[int, int]:
    """Number -> id of the task's policy versions, through ``Comparison.policy_version``'s
    related model (the app that owns policy versions is not imported here)."""
    model: Any = Comparison._meta.get_field("policy_version").related_model
    return dict(model.objects.filter(task=task).values_list("number", "id"))


class _PromptResolver:
    """Maps a row's prompt (by id, else by text) to a prompt of the task, creating it once."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.by_id: dict[str, int] = {}
        self.by_text: dict[str, int] = {}
        self.stored_ids: dict[int, list[int] | None] = {}  # token ids of prompts found in the task
        self.created = 0

    def resolve(self, batch: list[ComparisonRow]) -> list[int]:
        ids = {r.prompt_id for r in batch if r.prompt_id and r.prompt_id not in self.by_id}
        texts = {r.prompt for r in batch if not r.prompt_id and r.prompt not in self.by_text}
        existing = Prompt.objects.filter(task=self.task)
        id_texts: dict[str, str] = {}
        for pk, external_id, text, token_ids in existing.filter(external_id__in=ids).values_list(
            "pk", "external_id", "text", "token_ids"
        ):
            self.by_id[external_id] = pk
            self.stored_ids[pk] = token_ids
            id_texts[external_id] = text
        for pk, text, token_ids in (
            existing.filter(text__in=texts).order_by("-id").values_list("pk", "text", "token_ids")
        ):
            self.by_text[text] = pk
            self.stored_ids[pk] = token_ids
        missing: dict[tuple[str, str], ComparisonRow] = {}
        for row in batch:
            if row.prompt_id:
                if row.prompt_id in id_texts and id_texts[row.prompt_id] != row.prompt:
                    raise ImportFileError(
                        f"prompt id {row.prompt_id!r} exists with a different text", row.line
                    )
                if row.prompt_id not in self.by_id:
                    missing.setdefault(("id", row.prompt_id), row)
            elif row.prompt not in self.by_text:
                missing.setdefault(("text", row.prompt), row)
        self._create(missing)
        resolved = [
            self.by_id[row.prompt_id] if row.prompt_id else self.by_text[row.prompt]
            for row in batch
        ]
        for row, pk in zip(batch, resolved, strict=True):
            self._check_stored_ids(row, pk)
        return resolved

    def _check_stored_ids(self, row: ComparisonRow, pk: int) -> None:
        """A prompt that the task had before this import keeps its token ids: a line may not
        give others (they would be dropped)."""
        if row.prompt_token_ids is None or pk not in self.stored_ids:
            return
        stored = self.stored_ids[pk]
        name = f"prompt id {row.prompt_id!r}" if row.prompt_id else "this prompt"
        if stored is None:
            raise ImportFileError(
                f"{name} exists in this task without token ids: leave out 'prompt_token_ids'",
                row.line,
            )
        if stored != row.prompt_token_ids:
            raise ImportFileError(
                f"{name} exists in this task with different 'prompt_token_ids'", row.line
            )

    def _create(self, missing: dict[tuple[str, str], ComparisonRow]) -> None:
        """One multi-row INSERT for the batch's new prompts (primary keys come back)."""
        created = Prompt.objects.bulk_create(
            [
                Prompt(
                    task=self.task,
                    text=row.prompt,
                    token_ids=row.prompt_token_ids,
                    external_id=row.prompt_id,
                )
                for row in missing.values()
            ],
            batch_size=BATCH_SIZE,
        )
        for (kind, key), prompt in zip(missing, created, strict=True):
            (self.by_id if kind == "id" else self.by_text)[key] = prompt.pk
        self.created += len(created)


def _check_comparisons_are_new(task: Task, batch: list[ComparisonRow], prompts: list[int]) -> None:
    existing: set[tuple[int, tuple[str, ...]]] = {
        (prompt_id, tuple(samples))
        for prompt_id, samples in Comparison.objects.filter(
            task=task, prompt_id__in=set(prompts)
        ).values_list("prompt_id", "samples")
    }
    for row, prompt_id in zip(batch, prompts, strict=True):
        if (prompt_id, tuple(row.samples)) in existing:
            raise ImportFileError(
                "duplicate: this comparison (same prompt and samples) already exists", row.line
            )
