"""Fixtures of the labeling tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import connection

from labeling import hot_sql


@dataclass
class HotPath:
    name: str
    """"sql": labeling.hot_sql's statements; "orm": the ORM path."""
    statements: int = 0
    """Hand-written statements run so far."""


@pytest.fixture(params=["sql", "orm"])
def hot_path(request, monkeypatch) -> HotPath:
    """Run a test on both paths of the hot path where the database has both: the hand-written
    SQL (PostgreSQL) and the ORM (SQLite, and PostgreSQL with ``hot_sql.enabled`` off). The
    ORM variant fails on any hand-written statement; the SQL one counts them."""
    path = HotPath(request.param)
    real_cursor = hot_sql.cursor
    if path.name == "sql":
        if connection.vendor != "postgresql":
            pytest.skip("the hand-written SQL path is PostgreSQL's")

        def counting_cursor():
            path.statements += 1
            return real_cursor()

        monkeypatch.setattr(hot_sql, "cursor", counting_cursor)
    else:
        monkeypatch.setattr(hot_sql, "enabled", lambda: False)

        def no_cursor():
            raise AssertionError("the ORM path ran a hand-written statement")

        monkeypatch.setattr(hot_sql, "cursor", no_cursor)
    return path


@pytest.fixture(scope="session")
def byte_tokenizer_dir(tmp_path_factory):
    """A model directory whose tokenizer.json is a byte-level BPE with one token per byte and
    an <|endoftext|> special token (id 256): real GPT-2 decoding on a tiny vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE({ch: i for i, ch in enumerate(alphabet)}, []))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    directory = tmp_path_factory.mktemp("byte-model")
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


@pytest.fixture
def encode(byte_tokenizer_dir):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(byte_tokenizer_dir / "tokenizer.json"))
    return lambda text: tokenizer.encode(text).ids
