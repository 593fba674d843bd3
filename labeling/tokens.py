"""Checking imported token ids against the task's tokenizer, without torch.

A base model's ``tokenizer.json`` is found through ``labeling.hooks.tokenizer_file`` and
loaded with the ``tokenizers`` package (Rust, no torch), once per process and file. Token ids
must lie inside its vocabulary and decode to the text they stand for:

- a sample's ids decode to the sample (special tokens, such as an ending EOS, skipped or
  kept: the loop stores sample texts without them);
- a prompt's ids decode to the prompt or, when there are exactly ``query_length`` of them
  (the loop keeps a long query's last ``query_length`` tokens), to the end of the prompt.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labeling import hooks

REPLACEMENT = "\ufffd"  # a token cut inside a multi-byte character decodes to this


class TokenizerUnavailable(Exception):
    """The task's tokenizer cannot be had; the message says why."""


class Vocabulary:
    def __init__(self, base_model: str, tokenizer: Any) -> None:
        self.base_model = base_model
        self._tokenizer = tokenizer
        self.size = int(tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text`` as the model reads a query (no special tokens added)."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decodings(self, ids: Sequence[int]) -> set[str]:
        """The texts ``ids`` decode to, with special tokens skipped and kept."""
        return {
            self._tokenizer.decode(list(ids), skip_special_tokens=skip) for skip in (True, False)
        }

    def problem(self, ids: Sequence[int], text: str, *, cut_at: int | None = None) -> str | None:
        """Why ``ids`` do not stand for ``text`` (None when they do). ``cut_at``: a prompt's
        query length, at which the ids may be the end of the text."""
        beyond = [i for i in ids if i >= self.size]
        if beyond:
            return (
                f"token id {beyond[0]} is outside the vocabulary of {self.base_model} "
                f"({self.size} tokens)"
            )
        decoded = self.decodings(ids)
        if text in decoded:
            return None
        if cut_at is not None and len(ids) == cut_at:
            tails = {d.lstrip(REPLACEMENT) for d in decoded}
            if any(tail and text.endswith(tail) for tail in tails):
                return None
        shown = min(decoded, key=len)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f"decode to {shown!r}, not to the text"


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def vocabulary_for(base_model: str) -> Vocabulary:
    """The vocabulary of ``base_model``; TokenizerUnavailable saying why there is none."""
    try:
        path: Path = hooks.tokenizer_file(base_model)
        return Vocabulary(base_model, _load(str(path), path.stat().st_mtime))
    except LookupError as exc:
        raise TokenizerUnavailable(
            f"the tokenizer of {base_model} is not available: {exc}"
        ) from exc
    except ImportError:
        raise TokenizerUnavailable("the 'tokenizers' package is not installed") from None
    except Exception as exc:  # a corrupt or foreign tokenizer.json
        raise TokenizerUnavailable(
            f"the tokenizer of {base_model} cannot be loaded: {exc}"
        ) from exc
