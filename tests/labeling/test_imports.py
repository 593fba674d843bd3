"""Imports are all or nothing, and every kind of bad line is reported by its number."""

from __future__ import annotations

import io
import json

import pytest

from labeling.importers import MAX_LINE_BYTES, ImportFileError
from labeling.models import Comparison, Prompt
from labeling.services.imports import import_comparisons, import_prompts
from tests.factories import PromptFactory, TaskFactory

pytestmark = pytest.mark.django_db


def jsonl(*rows: object) -> io.BytesIO:
    return io.BytesIO(
        b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)
    )


def comparison(prompt: str = "Once upon a time", k: int = 4, **extra: object) -> dict:
    return {"prompt": prompt, "samples": [f"{prompt} / sample {i}" for i in range(k)], **extra}


# ---- prompts ---------------------------------------------------------------------------


def test_prompts_jsonl_are_imported_with_ids_splits_and_token_ids(byte_tokenizer_dir, encode):
    task = TaskFactory(base_model=str(byte_tokenizer_dir))
    stream = jsonl(
        {"text": "first", "id": "a"},
        {"prompt": "second", "split": "eval", "token_ids": encode("second")},
        b"",  # blank lines are ignored
        {"text": "third"},
    )
    seen: list[int] = []
    result = import_prompts(task=task, stream=stream, progress=seen.append)
    assert result.rows == 3
    prompts = list(Prompt.objects.filter(task=task).order_by("id"))
    assert [p.text for p in prompts] == ["first", "second", "third"]
    assert [p.split for p in prompts] == ["train", "eval", "train"]
    assert prompts[0].external_id == "a"
    assert prompts[1].token_ids == encode("second")
    assert seen == [3]


def test_prompts_default_split_applies_only_to_rows_without_one():
    task = TaskFactory()
    import_prompts(
        task=task, stream=jsonl({"text": "x"}, {"text": "y", "split": "train"}), split="eval"
    )
    assert dict(Prompt.objects.values_list("text", "split")) == {"x": "eval", "y": "train"}


def test_prompts_csv_with_header_and_multiline_field():
    task = TaskFactory()
    data = b'id,text,split\n1,"Hello, world",eval\n2,"line one\nline two",\n'
    result = import_prompts(task=task, stream=io.BytesIO(data), file_format="csv")
    assert result.rows == 2
    texts = list(Prompt.objects.order_by("id").values_list("external_id", "text", "split"))
    assert texts == [("1", "Hello, world", "eval"), ("2", "line one\nline two", "train")]


def test_csv_with_bom_and_crlf():
    task = TaskFactory()
    data = b"\xef\xbb\xbftext\r\nalpha\r\nbeta\r\n"
    import_prompts(task=task, stream=io.BytesIO(data), file_format="csv")
    assert sorted(Prompt.objects.values_list("text", flat=True)) == ["alpha", "beta"]


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        ([{"text": "ok"}, {"id": "x"}], 2, "missing field 'text'"),
        ([{"text": "ok"}, b"{not json"], 2, "bad JSON"),
        ([{"text": "ok"}, b"[1, 2]"], 2, "expected a JSON object"),
        ([{"text": "ok"}, {"text": "a", "split": "test"}], 2, "'split' must be one of"),
        ([{"text": "ok"}, {"text": "a", "token_ids": [1, -2]}], 2, "non-negative integers"),
        ([{"text": "ok"}, {"text": "ok"}], 2, "duplicate prompt text (first seen on line 1)"),
        ([{"text": "a", "id": "7"}, {"text": "b", "id": 7}], 2, "duplicate prompt id '7'"),
        ([{"text": "ok"}, {"text": "x" * 100_001}], 2, "longer than 100000 characters"),
        ([{"text": "ok"}, {"text": "fine"}, b'{"text": "caf\xe9"}'], 3, "invalid UTF-8"),
        ([{"text": "ok"}, b'{"text": "' + b"x" * MAX_LINE_BYTES + b'"}'], 2, "line longer"),
        ([{"text": "ok"}, {"text": 3}], 2, "'text' must be a string"),
    ],
)
def test_bad_prompt_line_names_the_line_and_imports_nothing(lines, line, message):
    task = TaskFactory()
    with pytest.raises(ImportFileError) as info:
        import_prompts(task=task, stream=jsonl(*lines))
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"line {line}: ")
    assert not Prompt.objects.exists()


def test_bad_line_after_a_full_batch_rolls_back_the_earlier_batches(monkeypatch):
    monkeypatch.setattr("labeling.services.imports.BATCH_SIZE", 10)
    task = TaskFactory()
    rows = [{"text": f"prompt {i}"} for i in range(35)] + [{"nope": 1}]
    with pytest.raises(ImportFileError) as info:
        import_prompts(task=task, stream=jsonl(*rows))
    assert info.value.line == 36
    assert not Prompt.objects.exists()


def test_prompt_already_in_the_task_is_a_duplicate():
    task = TaskFactory()
    PromptFactory(task=task, text="taken", external_id="p1")
    with pytest.raises(ImportFileError, match="line 2: duplicate: prompt id 'p1'"):
        import_prompts(task=task, stream=jsonl({"text": "new"}, {"text": "other", "id": "p1"}))
    with pytest.raises(ImportFileError, match="line 1: duplicate: this prompt text"):
        import_prompts(task=task, stream=jsonl({"text": "taken"}))
    assert Prompt.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (b"id,body\n1,x\n", 1, "no 'text' column"),
        (b"text,split\nfine,train\nbad,test\n", 3, "'split' must be one of"),
        (b"text,id\nfine,1\nonly-one-column\n", 3, "expected 2 columns, got 1"),
        (b"text\nfine\n\xff\xfe\n", 3, "invalid UTF-8"),
        (b"text\nsame\nsame\n", 3, "duplicate prompt text"),
        (b'text\nfine\n"unterminated\n', 3, "bad CSV"),
    ],
)
def test_bad_csv_line_names_the_line_and_imports_nothing(data, line, message):
    task = TaskFactory()
    with pytest.raises(ImportFileError) as info:
        import_prompts(task=task, stream=io.BytesIO(data), file_format="csv")
    assert info.value.line == line, str(info.value)
    assert message in str(info.value)
    assert not Prompt.objects.exists()


def test_empty_file_is_an_error():
    with pytest.raises(ImportFileError, match="no rows"):
        import_prompts(task=TaskFactory(), stream=io.BytesIO(b"\n\n"))


# ---- comparisons -----------------------------------------------------------------------


def test_comparisons_create_prompts_once_and_keep_token_ids_and_gold(byte_tokenizer_dir, encode):
    task = TaskFactory(k=3, labels_per_comparison=2, base_model=str(byte_tokenizer_dir))
    existing = PromptFactory(task=task, text="known prompt")
    fresh = comparison("fresh prompt", k=3)
    fresh_ids = [encode(sample) for sample in fresh["samples"]]
    stream = jsonl(
        comparison("known prompt", k=3),
        {**fresh, "sample_token_ids": fresh_ids},
        {**comparison("fresh prompt", k=3), "samples": ["a", "b", "c"], "gold_choice": 2},
        comparison("by id", k=3, prompt_id="q-9", prompt_token_ids=encode("by id")),
    )
    result = import_comparisons(task=task, stream=stream)
    assert (result.rows, result.prompts_created, result.comparisons_created) == (4, 2, 4)
    rows = list(Comparison.objects.filter(task=task).order_by("id"))
    assert rows[0].prompt == existing
    assert rows[1].prompt == rows[2].prompt
    assert rows[1].sample_token_ids == fresh_ids
    assert (rows[2].is_gold, rows[2].gold_choice) == (True, 2)
    assert (rows[0].is_gold, rows[0].gold_choice) == (False, None)
    assert all(c.k == 3 and c.overlap == 2 and c.open_slots == 2 for c in rows)
    by_id = Prompt.objects.get(task=task, external_id="q-9")
    assert by_id.token_ids == encode("by id")
    assert rows[3].prompt == by_id


def test_comparisons_keep_sample_ended_as_given():
    """Imported comparisons are the researcher's choice: samples that did not end stay, and
    a file that does not say leaves it unknown (null)."""
    task = TaskFactory(k=2)
    stream = jsonl(
        comparison("said", k=2, sample_ended=[True, False]),
        comparison("all ended", k=2, sample_ended=[True, True]),
        comparison("unsaid", k=2),
    )
    import_comparisons(task=task, stream=stream)
    stored = dict(Comparison.objects.values_list("prompt__text", "sample_ended"))
    assert stored == {"said": [True, False], "all ended": [True, True], "unsaid": None}


def test_comparisons_reference_policy_versions_by_number():
    from training.models import PolicyVersion

    task = TaskFactory(k=2)
    version = PolicyVersion.objects.create(task=task, number=0)
    import_comparisons(task=task, stream=jsonl(comparison("p", k=2, policy_version=0)))
    assert Comparison.objects.get().policy_version == version
    with pytest.raises(ImportFileError, match="line 1: policy version 3 does not exist"):
        import_comparisons(task=task, stream=jsonl(comparison("q", k=2, policy_version=3)))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"samples": ["a", "b", "c", "d"]}, "missing field 'prompt'"),
        ({"prompt": "p"}, "missing field 'samples'"),
        (comparison("p", k=3), "expected K=4 samples, got 3"),
        (comparison("p", k=5), "expected K=4 samples, got 5"),
        ({"prompt": "p", "samples": "abcd"}, "'samples' must be a list"),
        ({"prompt": "p", "samples": ["a", "b", 3, "d"]}, "'samples[2]' must be a string"),
        ({"prompt": "p", "samples": ["a", "b", "", "d"]}, "missing field 'samples[2]'"),
        (comparison("p", gold_choice=4), "'gold_choice' must be an integer in 0..3"),
        (comparison("p", gold_choice=True), "'gold_choice' must be an integer"),
        (comparison("p", sample_token_ids=[[1]]), "'sample_token_ids' must be a list of K=4"),
        (comparison("first"), "duplicate comparison"),
        (comparison("p", prompt_token_ids="1 2"), "'prompt_token_ids' must be a list"),
        (comparison("p", sample_ended=[True] * 3), "'sample_ended' must be a list of K=4 bool"),
        (comparison("p", sample_ended=[1, 1, 1, 1]), "'sample_ended' must be a list of K=4"),
        (comparison("p", sample_ended="yes"), "'sample_ended' must be a list of K=4"),
    ],
)
def test_bad_comparison_line_names_the_line_and_imports_nothing(bad, message):
    task = TaskFactory(k=4)
    stream = jsonl(comparison("first"), comparison("second"), bad)
    with pytest.raises(ImportFileError) as info:
        import_comparisons(task=task, stream=stream)
    assert info.value.line == 3
    assert message in str(info.value)
    assert not Comparison.objects.exists()
    assert not Prompt.objects.exists()


def test_comparison_already_in_the_task_is_a_duplicate():
    task = TaskFactory(k=2)
    import_comparisons(task=task, stream=jsonl(comparison("p", k=2)))
    with pytest.raises(ImportFileError, match="line 2: duplicate: this comparison"):
        import_comparisons(task=task, stream=jsonl(comparison("q", k=2), comparison("p", k=2)))
    assert Comparison.objects.count() == 1
    assert Prompt.objects.count() == 1


def test_prompt_id_with_a_different_text_is_rejected():
    task = TaskFactory(k=2)
    PromptFactory(task=task, text="original", external_id="p1")
    with pytest.raises(ImportFileError, match="line 1: prompt id 'p1' exists with a different"):
        import_comparisons(task=task, stream=jsonl(comparison("changed", k=2, prompt_id="p1")))


def test_invalid_utf8_in_comparisons_names_the_line():
    task = TaskFactory(k=2)
    stream = jsonl(comparison("ok", k=2), b'{"prompt": "\xc3\x28", "samples": ["a", "b"]}')
    with pytest.raises(ImportFileError, match="line 2: invalid UTF-8"):
        import_comparisons(task=task, stream=stream)
    assert not Comparison.objects.exists()
