"""Pure parsers for summarization sources (articles with an optional reference summary) in
JSONL or CSV, on the prompt importers' checks: all-or-nothing, errors name the line."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from labeling.importers import (
    _check_fields,
    _csv_records,
    _Dedup,
    _external_id,
    _json_lines,
    _one_of,
    _split,
    _text,
)

SOURCE_TEXT_KEYS = ("article", "document", "text")
SOURCE_REFERENCE_KEYS = ("highlights", "summary", "reference")
SOURCE_FIELDS = frozenset({*SOURCE_TEXT_KEYS, *SOURCE_REFERENCE_KEYS, "id", "external_id", "split"})
"""Source files (a summarization task's prompts), JSONL or CSV, in the common shapes:
``article``/``highlights`` (CNN/DailyMail), ``document``/``summary`` (XSum) or
``text``/``reference``; the reference summary is optional; ``id`` and ``split`` as for prompts."""


@dataclass(frozen=True)
class SourceRow:
    line: int
    article: str
    reference: str = ""
    external_id: str = ""
    split: str | None = None


def _source_row(data: dict[str, Any], line: int) -> SourceRow:
    _check_fields(data, SOURCE_FIELDS, line)
    key = _one_of(data, SOURCE_TEXT_KEYS, line)
    reference_key = _one_of(data, SOURCE_REFERENCE_KEYS, line)
    id_key = _one_of(data, ("id", "external_id"), line)
    return SourceRow(
        line=line,
        article=_text(data.get(key), key, line),
        reference=_text(data.get(reference_key), reference_key, line, required=False).strip(),
        external_id=_external_id(data.get(id_key), "id", line),
        split=_split(data.get("split"), line),
    )


def _dedup_sources(rows: Iterator[SourceRow]) -> Iterator[SourceRow]:
    ids, texts = _Dedup(), _Dedup()
    for row in rows:
        if row.external_id:
            ids.check(row.external_id, f"article id {row.external_id!r}", row.line)
        texts.check(row.article.strip(), "article", row.line)
        yield row


def parse_sources_jsonl(stream: IO[bytes]) -> Iterator[SourceRow]:
    """Articles (with optional reference summaries) of a JSONL file, validated line by line."""
    return _dedup_sources(_source_row(data, line) for line, data in _json_lines(stream))


def parse_sources_csv(stream: IO[bytes]) -> Iterator[SourceRow]:
    """Articles of a CSV file with a header row naming the columns (as in JSONL)."""
    return _dedup_sources(_source_row(record, line) for line, record in _csv_records(stream))
