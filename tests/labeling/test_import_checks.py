"""Imports that would corrupt silently are refused: a prompt given twice with different text or
token ids, unknown fields, and token ids outside the vocabulary or that decode to other text."""

from __future__ import annotations

import io
import json

import pytest

from labeling import hooks, tokens
from labeling.importers import ImportFileError
from labeling.models import Comparison, Prompt
from labeling.services.imports import import_comparisons, import_prompts
from tests.factories import PromptFactory, TaskFactory

pytestmark = pytest.mark.django_db


def jsonl(*rows: dict) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


def comparison(prompt: str, k: int = 2, **extra: object) -> dict:
    return {"prompt": prompt, "samples": [f"{prompt} / sample {i}" for i in range(k)], **extra}


def refused(call, line: int, *phrases: str) -> str:
    with pytest.raises(ImportFileError) as info:
        call()
    message = str(info.value)
    assert info.value.line == line, message
    for phrase in phrases:
        assert phrase in message
    assert not Comparison.objects.exists()
    return message


# ---- one prompt, two versions in one file ----------------------------------------------------


def test_a_prompt_id_repeated_with_other_text_names_both_lines():
    task = TaskFactory(k=2)
    stream = jsonl(
        comparison("the river rose", prompt_id="p1"),
        comparison("something else", prompt_id="p2"),
        comparison("the river fell", prompt_id="p1"),
    )
    refused(
        lambda: import_comparisons(task=task, stream=stream),
        3,
        "prompt id 'p1' has a different text here than on line 1",
    )
    assert not Prompt.objects.exists()


def test_a_prompt_repeated_with_other_token_ids_names_both_lines(byte_tokenizer_dir, encode):
    task = TaskFactory(k=2, base_model=str(byte_tokenizer_dir))
    first = comparison("hello", prompt_token_ids=encode("hello"))
    stream = jsonl(first, {**first, "samples": ["x", "y"], "prompt_token_ids": None})
    refused(
        lambda: import_comparisons(task=task, stream=stream),
        2,
        "different 'prompt_token_ids' here than on line 1",
    )


def test_a_prompt_repeated_with_the_same_text_and_ids_is_one_prompt(byte_tokenizer_dir, encode):
    task = TaskFactory(k=2, base_model=str(byte_tokenizer_dir))
    ids = encode("hello")
    stream = jsonl(
        comparison("hello", prompt_id="p1", prompt_token_ids=ids),
        {**comparison("hello", prompt_id="p1", prompt_token_ids=ids), "samples": ["x", "y"]},
    )
    result = import_comparisons(task=task, stream=stream)
    assert (result.prompts_created, result.comparisons_created) == (1, 2)
    assert Prompt.objects.get().token_ids == ids


def test_a_prompt_of_the_task_keeps_its_token_ids(byte_tokenizer_dir, encode):
    task = TaskFactory(k=2, base_model=str(byte_tokenizer_dir))
    PromptFactory(task=task, text="hello", external_id="p1", token_ids=None)
    PromptFactory(task=task, text="world", token_ids=encode("world"))
    line = comparison("hello", prompt_id="p1", prompt_token_ids=encode("hello"))
    refused(lambda: import_comparisons(task=task, stream=jsonl(line)), 1, "without token ids")
    other_ids = encode("world")[:-1] + encode("world")[-1:]  # equal: accepted
    import_comparisons(task=task, stream=jsonl(comparison("world", prompt_token_ids=other_ids)))
    assert Comparison.objects.count() == 1


# ---- unknown fields ---------------------------------------------------------------------


def test_a_misspelled_field_is_refused_with_a_suggestion():
    task = TaskFactory(k=2)
    stream = jsonl(comparison("a"), comparison("b", gold_choise=1))
    refused(
        lambda: import_comparisons(task=task, stream=stream),
        2,
        "unknown field 'gold_choise'",
        "did you mean 'gold_choice'?",
    )


@pytest.mark.parametrize(
    ("row", "phrase"),
    [
        ({"text": "a", "tokens": [1]}, "unknown field 'tokens'"),
        ({"text": "a", "prompt": "b"}, "give one of text, prompt"),
        ({"text": "a", "id": "1", "external_id": "2"}, "give one of id, external_id"),
    ],
)
def test_prompt_files_refuse_unknown_and_doubled_fields(row, phrase):
    task = TaskFactory()
    stream = jsonl({"text": "fine"}, row)
    with pytest.raises(ImportFileError, match="line 2: ") as info:
        import_prompts(task=task, stream=stream)
    assert phrase in str(info.value)
    assert not Prompt.objects.exists()


def test_a_csv_with_an_unknown_column_is_refused():
    task = TaskFactory()
    data = io.BytesIO(b"text,splt\nhello,eval\n")
    with pytest.raises(ImportFileError, match=r"line 1: unknown column 'splt'.*'split'"):
        import_prompts(task=task, stream=data, file_format="csv")


def test_both_prompt_and_query_is_refused():
    task = TaskFactory(k=2)
    stream = jsonl({**comparison("a"), "query": "b"})
    refused(lambda: import_comparisons(task=task, stream=stream), 1, "give one of prompt, query")


# ---- token ids against the tokenizer -------------------------------------------------------


def test_token_ids_beyond_the_vocabulary_are_refused(byte_tokenizer_dir, encode):
    task = TaskFactory(k=2, base_model=str(byte_tokenizer_dir))
    row = comparison("hi")
    row["sample_token_ids"] = [encode(row["samples"][0]), [*encode(row["samples"][1]), 257]]
    refused(
        lambda: import_comparisons(task=task, stream=jsonl(row)),
        1,
        "'sample_token_ids[1]'",
        "token id 257 is outside the vocabulary",
        "(257 tokens)",
    )


def test_token_ids_that_decode_to_other_text_are_refused(byte_tokenizer_dir, encode):
    task = TaskFactory(k=2, base_model=str(byte_tokenizer_dir))
    row = comparison("hi", prompt_token_ids=encode("ho"))
    refused(
        lambda: import_comparisons(task=task, stream=jsonl(row)),
        1,
        "'prompt_token_ids': decode to 'ho', not to the text",
    )
    row = comparison("hi")
    row["sample_token_ids"] = [encode(s) for s in reversed(row["samples"])]
    refused(lambda: import_comparisons(task=task, stream=jsonl(row)), 1, "'sample_token_ids[0]'")
    with pytest.raises(ImportFileError, match="line 1: 'token_ids': decode to 'ho'"):
        import_prompts(task=task, stream=jsonl({"text": "hi", "token_ids": encode("ho")}))


def test_an_ending_special_token_may_be_left_out_of_the_sample_text(byte_tokenizer_dir, encode):
    task = TaskFactory(k=2, base_model=str(byte_tokenizer_dir))
    row = comparison("hi")
    row["sample_token_ids"] = [[*encode(s), 256] for s in row["samples"]]  # ... <|endoftext|>
    import_comparisons(task=task, stream=jsonl(row))
    assert Comparison.objects.get().sample_token_ids == row["sample_token_ids"]


def test_a_prompt_cut_to_its_last_query_length_tokens_is_accepted(byte_tokenizer_dir, encode):
    task = TaskFactory(k=2, base_model=str(byte_tokenizer_dir), query_length=8)
    text = "a long prompt, longer than eight bytes"
    import_comparisons(
        task=task, stream=jsonl(comparison(text, prompt_token_ids=encode(text)[-8:]))
    )
    assert Prompt.objects.get().token_ids == encode(text)[-8:]
    # Fewer than query_length tokens must be the whole text.
    with pytest.raises(ImportFileError, match=r"line 1: 'prompt_token_ids'.*not to the text"):
        import_comparisons(
            task=task, stream=jsonl(comparison("another long prompt", prompt_token_ids=[101]))
        )


def test_an_empty_token_list_does_not_stand_for_a_sample(byte_tokenizer_dir):
    task = TaskFactory(k=2, base_model=str(byte_tokenizer_dir))
    row = comparison("hi", sample_token_ids=[[], []])
    refused(lambda: import_comparisons(task=task, stream=jsonl(row)), 1, "'sample_token_ids[0]'")


def test_token_ids_are_refused_when_the_tokenizer_cannot_be_had(tmp_path):
    task = TaskFactory(k=2, base_model=str(tmp_path))  # a directory without tokenizer.json
    row = comparison("hi", prompt_token_ids=[1, 2])
    message = refused(
        lambda: import_comparisons(task=task, stream=jsonl(row)),
        1,
        "token ids cannot be checked",
        "no tokenizer.json",
        "import the file without token ids",
    )
    assert str(tmp_path) in message
    # The same file without token ids imports.
    import_comparisons(task=task, stream=jsonl(comparison("hi")))


def test_without_a_tokenizer_locator_token_ids_are_refused(monkeypatch):
    monkeypatch.setattr(hooks, "_tokenizer_locators", [])
    task = TaskFactory(k=2)
    refused(
        lambda: import_comparisons(task=task, stream=jsonl(comparison("hi", prompt_token_ids=[1]))),
        1,
        "no tokenizer locator is registered",
    )


def test_a_corrupt_tokenizer_file_is_unavailable_not_a_crash(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(tokens.TokenizerUnavailable, match="cannot be loaded"):
        tokens.vocabulary_for(str(tmp_path))
