"""Pure parsing and validation of prompt and comparison files (JSONL or CSV).

No database access here: the parsers turn a binary stream into validated rows, line by
line, and raise :class:`ImportFileError` naming the (1-based) line of the first problem.
The all-or-nothing writes live in :mod:`labeling.services.imports`.

Prompt files
    JSONL: one object per line, ``{"text": str, "id"?: str, "token_ids"?: [int], "split"?:
    "train"|"eval"}`` (``prompt`` or ``query`` may stand for ``text``).
    CSV: a header row with a ``text`` (or ``prompt``) column, optional ``id`` and ``split``.
Comparison files (JSONL)
    ``{"prompt": str, "samples": [K str], "prompt_id"?: str, "prompt_token_ids"?: [int],
    "sample_token_ids"?: [K [int]], "sample_ended"?: [K bool], "gold_choice"?: int 0..K-1,
    "policy_version"?: int}``. ``sample_ended`` says which samples ended under the task's
    truncation rule; it is kept as given (the researcher's choice), null when absent.
Source files (a summarization task's articles, JSONL or CSV)
    ``{"article"|"document"|"text": str, "highlights"|"summary"|"reference"?: str, "id"?,
    "split"?}``: see :data:`SOURCE_FIELDS` and :mod:`labeling.services.sources`.
Blank lines are ignored. Duplicates (same prompt id or text; same prompt and samples)
within one file are errors, and so is a prompt (by id, else by text) that two lines give
with different texts or different token ids: the error names both lines. A field (or CSV
column) not listed above is an error naming it, so that a misspelled ``gold_choise`` does not
quietly import a gold comparison as an ordinary one. Token ids are checked against the
task's tokenizer by :mod:`labeling.services.imports` (see :mod:`labeling.tokens`).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

MAX_LINE_BYTES = 1_000_000
MAX_TEXT_CHARS = 100_000
MAX_ID_CHARS = 200
MAX_TOKENS = 16_384
SPLITS = ("train", "eval")
PROMPT_FIELDS = frozenset({"text", "prompt", "query", "id", "external_id", "token_ids", "split"})
COMPARISON_FIELDS = frozenset(
    {
        "prompt",
        "query",
        "samples",
        "prompt_id",
        "prompt_token_ids",
        "sample_token_ids",
        "sample_ended",
        "gold_choice",
        "policy_version",
    }
)


class ImportFileError(ValueError):
    """A problem in an uploaded file; ``line`` is 1-based (None: the file as a whole)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        self.detail = message
        super().__init__(f"line {line}: {message}" if line is not None else message)


@dataclass(frozen=True)
class PromptRow:
    line: int
    text: str
    external_id: str = ""
    token_ids: list[int] | None = None
    split: str | None = None


@dataclass(frozen=True)
class ComparisonRow:
    line: int
    prompt: str
    samples: list[str]
    prompt_id: str = ""
    prompt_token_ids: list[int] | None = None
    sample_token_ids: list[list[int]] | None = None
    sample_ended: list[bool] | None = None
    gold_choice: int | None = None
    policy_version: int | None = None


def iter_lines(stream: IO[bytes], *, keep_ends: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line, without its newline unless ``keep_ends``); bounded
    memory per line."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ImportFileError(f"line longer than {MAX_LINE_BYTES} bytes", number)
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImportFileError(
                f"invalid UTF-8 at byte {error.start} of the line", number
            ) from None
        yield number, text if keep_ends else text.rstrip("\r\n")


def _json_lines(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, text in iter_lines(stream):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ImportFileError(f"bad JSON: {error.msg} (column {error.colno})", number) from None
        if not isinstance(data, dict):
            raise ImportFileError("expected a JSON object", number)
        yield number, data


def _check_fields(names: Any, known: frozenset[str], line: int, what: str = "field") -> None:
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(str(name), sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ImportFileError(
                f"unknown {what} {str(name)[:80]!r}{hint}; known: {', '.join(sorted(known))}",
                line,
            )


def _one_of(data: dict[str, Any], names: tuple[str, ...], line: int) -> str:
    """The one key of ``names`` that ``data`` has (the first when none); two is an error."""
    present = [name for name in names if name in data]
    if len(present) > 1:
        raise ImportFileError(f"give one of {', '.join(present)}, not both", line)
    return present[0] if present else names[0]


def _text(value: Any, name: str, line: int, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise ImportFileError(f"missing field '{name}'", line)
        return ""
    if not isinstance(value, str):
        raise ImportFileError(f"'{name}' must be a string", line)
    if not value.strip() and required:
        raise ImportFileError(f"'{name}' is blank", line)
    if len(value) > MAX_TEXT_CHARS:
        raise ImportFileError(f"'{name}' is longer than {MAX_TEXT_CHARS} characters", line)
    if "\x00" in value:
        raise ImportFileError(f"'{name}' contains a NUL character", line)
    return value


def _external_id(value: Any, name: str, line: int) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ImportFileError(f"'{name}' must be a string or an integer", line)
    if len(value) > MAX_ID_CHARS:
        raise ImportFileError(f"'{name}' is longer than {MAX_ID_CHARS} characters", line)
    return value.strip()


def _token_ids(value: Any, name: str, line: int) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value
    ):
        raise ImportFileError(f"'{name}' must be a list of non-negative integers", line)
    if len(value) > MAX_TOKENS:
        raise ImportFileError(f"'{name}' has more than {MAX_TOKENS} tokens", line)
    return value


def _split(value: Any, line: int) -> str | None:
    if value is None or value == "":
        return None
    if value not in SPLITS:
        raise ImportFileError(f"'split' must be one of {', '.join(SPLITS)}, got {value!r}", line)
    return str(value)


def _prompt_row(data: dict[str, Any], line: int) -> PromptRow:
    _check_fields(data, PROMPT_FIELDS, line)
    key = _one_of(data, ("text", "prompt", "query"), line)
    id_key = _one_of(data, ("id", "external_id"), line)
    return PromptRow(
        line=line,
        text=_text(data.get(key), "text", line),
        external_id=_external_id(data.get(id_key), "id", line),
        token_ids=_token_ids(data.get("token_ids"), "token_ids", line),
        split=_split(data.get("split"), line),
    )


class _Dedup:
    """Remembers digests of keys seen in this file; reports the first line of a duplicate."""

    def __init__(self) -> None:
        self.seen: dict[bytes, int] = {}

    def check(self, key: str, what: str, line: int) -> None:
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
        first = self.seen.setdefault(digest, line)
        if first != line:
            raise ImportFileError(f"duplicate {what} (first seen on line {first})", line)


def _dedup_prompts(rows: Iterator[PromptRow]) -> Iterator[PromptRow]:
    ids, texts = _Dedup(), _Dedup()
    for row in rows:
        if row.external_id:
            ids.check(row.external_id, f"prompt id {row.external_id!r}", row.line)
        texts.check(row.text, "prompt text", row.line)
        yield row


def parse_prompts_jsonl(stream: IO[bytes]) -> Iterator[PromptRow]:
    return _dedup_prompts(_prompt_row(data, line) for line, data in _json_lines(stream))


def parse_prompts_csv(stream: IO[bytes]) -> Iterator[PromptRow]:
    return _dedup_prompts(_csv_rows(stream))


def _csv_rows(stream: IO[bytes]) -> Iterator[PromptRow]:
    for line, record in _csv_records(stream, check_header=_check_prompt_header):
        token_ids = record.get("token_ids")
        if token_ids is not None:
            try:
                record["token_ids"] = json.loads(token_ids)
            except json.JSONDecodeError:
                raise ImportFileError("'token_ids' must be a JSON list", line) from None
        yield _prompt_row(record, line)


def _check_prompt_header(header: list[str]) -> None:
    if not any(c in header for c in ("text", "prompt", "query")):
        raise ImportFileError("the header has no 'text' column", 1)
    _check_fields(header, PROMPT_FIELDS, 1, what="column")


def parse_comparisons_jsonl(stream: IO[bytes], *, k: int) -> Iterator[ComparisonRow]:
    """Rows of a comparison file for a task with K samples per comparison."""
    seen = _Dedup()
    prompts = _PromptConsistency()
    for line, data in _json_lines(stream):
        row = _comparison_row(data, line, k)
        seen.check(
            json.dumps([row.prompt_id or row.prompt, row.samples], ensure_ascii=False),
            "comparison (same prompt and samples)",
            line,
        )
        prompts.check(row)
        yield row


class _PromptConsistency:
    """Lines that give one prompt (by id, else by text) must agree on its text and token ids;
    remembers a digest of each per prompt."""

    def __init__(self) -> None:
        self.seen: dict[bytes, tuple[int, bytes, bytes]] = {}

    @staticmethod
    def _digest(value: object) -> bytes:
        encoded = json.dumps(value, ensure_ascii=False).encode("utf-8")
        return hashlib.blake2b(encoded, digest_size=16).digest()

    def check(self, row: ComparisonRow) -> None:
        key = self._digest(["id", row.prompt_id] if row.prompt_id else ["text", row.prompt])
        text, ids = self._digest(row.prompt), self._digest(row.prompt_token_ids)
        first_line, first_text, first_ids = self.seen.setdefault(key, (row.line, text, ids))
        name = f"prompt id {row.prompt_id!r}" if row.prompt_id else "this prompt"
        if first_text != text:
            raise ImportFileError(
                f"{name} has a different text here than on line {first_line}", row.line
            )
        if first_ids != ids:
            raise ImportFileError(
                f"{name} has different 'prompt_token_ids' here than on line {first_line}",
                row.line,
            )


def _comparison_row(data: dict[str, Any], line: int, k: int) -> ComparisonRow:
    _check_fields(data, COMPARISON_FIELDS, line)
    prompt_key = _one_of(data, ("prompt", "query"), line)
    prompt = _text(data.get(prompt_key), "prompt", line)
    samples = data.get("samples")
    if samples is None:
        raise ImportFileError("missing field 'samples'", line)
    if not isinstance(samples, list):
        raise ImportFileError("'samples' must be a list of strings", line)
    if len(samples) != k:
        raise ImportFileError(f"expected K={k} samples, got {len(samples)}", line)
    texts = [_text(s, f"samples[{i}]", line) for i, s in enumerate(samples)]
    sample_token_ids = data.get("sample_token_ids")
    if sample_token_ids is not None:
        if not isinstance(sample_token_ids, list) or len(sample_token_ids) != k:
            raise ImportFileError(f"'sample_token_ids' must be a list of K={k} lists", line)
        sample_token_ids = [
            _token_ids(t, f"sample_token_ids[{i}]", line) or []
            for i, t in enumerate(sample_token_ids)
        ]
    sample_ended = data.get("sample_ended")
    if sample_ended is not None and (
        not isinstance(sample_ended, list)
        or len(sample_ended) != k
        or not all(isinstance(e, bool) for e in sample_ended)
    ):
        raise ImportFileError(f"'sample_ended' must be a list of K={k} booleans", line)
    gold = data.get("gold_choice")
    if gold is not None and (
        not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < k
    ):
        raise ImportFileError(f"'gold_choice' must be an integer in 0..{k - 1}", line)
    policy_version = data.get("policy_version")
    if policy_version is not None and (
        not isinstance(policy_version, int)
        or isinstance(policy_version, bool)
        or policy_version < 0
    ):
        raise ImportFileError("'policy_version' must be a non-negative integer", line)
    return ComparisonRow(
        line=line,
        prompt=prompt,
        samples=texts,
        prompt_id=_external_id(data.get("prompt_id"), "prompt_id", line),
        prompt_token_ids=_token_ids(data.get("prompt_token_ids"), "prompt_token_ids", line),
        sample_token_ids=sample_token_ids,
        sample_ended=sample_ended,
        gold_choice=gold,
        policy_version=policy_version,
    )


def detect_format(filename: str) -> str:
    """'csv' or 'jsonl' from a file name; raises ImportFileError for anything else."""
    name = filename.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise ImportFileError(f"unsupported file type {filename!r}: use .jsonl or .csv")


# --- summarization sources ---------------------------------------------------------------------


def _csv_records(
    stream: IO[bytes], check_header: Callable[[list[str]], None] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, {column: value}, empty cells left out) of a CSV file with a header row
    (lower-cased, passed to ``check_header``); blank rows are skipped, a row with the wrong
    number of columns is an error."""
    lines = iter_lines(stream, keep_ends=True)
    current = {"line": 0}

    def text_lines() -> Iterator[str]:
        for number, text in lines:
            current["line"] = number
            yield text

    reader = csv.reader(text_lines(), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportFileError("the file is empty") from None
    except csv.Error as error:
        raise ImportFileError(f"bad CSV: {error}", current["line"]) from None
    if check_header is not None:
        check_header(header)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise ImportFileError(f"bad CSV: {error}", current["line"]) from None
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise ImportFileError(
                f"expected {len(header)} columns, got {len(values)}", current["line"]
            )
        yield current["line"], {k: v for k, v in zip(header, values, strict=True) if v != ""}
