"""Best-of-K labels as the reward model reads them: records of the labeling app's paper-format
export, their token ids, batches of one K each, and the bounded replay of warm-started
retrains. No model here."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from .config import SamplingConfig
from .sampling import encode_queries, pad_left, pad_right

T = TypeVar("T")


@dataclass
class LabelRecord:
    """One line of the labeling app's paper-format export."""

    query: str
    samples: list[str]
    best: int | None
    query_token_ids: list[int] | None = None
    sample_token_ids: list[list[int]] | None = None
    comparison_id: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelRecord:
        k = 0
        while f"sample{k}" in data:
            k += 1
        if k < 2:
            raise ValueError(f"label {data.get('comparison_id')}: needs sample0..sample{{K-1}}")
        best = data.get("best")
        return cls(
            query=data["query"],
            samples=[data[f"sample{i}"] for i in range(k)],
            best=best if isinstance(best, int) and 0 <= best < k else None,
            query_token_ids=data.get("query_token_ids"),
            sample_token_ids=data.get("sample_token_ids"),
            comparison_id=data.get("comparison_id"),
        )


def read_labels_jsonl(path: str | Path) -> list[LabelRecord]:
    with open(path, encoding="utf-8") as lines:
        return [LabelRecord.from_dict(json.loads(line)) for line in lines if line.strip()]


@dataclass
class Example:
    query_ids: list[int]
    response_ids: list[list[int]]
    best: int
    key: str = ""
    """What an ensemble member's bootstrap weight of this label is drawn from: the comparison
    id, else the token ids (the same label, the same weights, in any batch or process)."""


def encode_label(
    record: LabelRecord, tokenizer: PreTrainedTokenizerBase, sampling: SamplingConfig
) -> Example:
    """Token ids as exported when present (used as they are), else tokenized text."""
    query = record.query_token_ids
    if query is None:
        query = encode_queries(tokenizer, [record.query], sampling.query_length)[0]
    responses = record.sample_token_ids
    if responses is None:
        encoded = tokenizer(record.samples, add_special_tokens=False)["input_ids"]
        responses = [list(ids[: sampling.response_length]) for ids in encoded]
    key = (
        f"comparison {record.comparison_id}"
        if record.comparison_id is not None
        else f"tokens {hash((tuple(query), *map(tuple, responses)))}"  # ints: not salted
    )
    return Example(list(query), [list(r) for r in responses], int(record.best or 0), key)


def collate(examples: Sequence[Example], pad_id: int) -> tuple[Tensor, ...]:
    ks = {len(e.response_ids) for e in examples}
    if len(ks) > 1:
        # Rows b*K..b*K+K-1 must continue query b: one K per batch (see batches_by_k).
        raise ValueError(f"a reward batch mixes K = {sorted(ks)}")
    query_ids, query_mask = pad_left([e.query_ids for e in examples], pad_id)  # (B, Tq)
    flat = [r for e in examples for r in e.response_ids]
    response_ids, response_mask = pad_right(flat, pad_id)  # (B*K, R)
    best = torch.tensor([e.best for e in examples])  # (B,)
    return query_ids, query_mask, response_ids, response_mask, best


def batches_by_k(
    examples: Sequence[Example], size: int, seed: int | None = None
) -> list[list[Example]]:
    """Batches of at most ``size`` examples with one K each (a task's K may have been edited
    between labels); with a ``seed`` the batch order is shuffled."""
    by_k: dict[int, list[Example]] = {}
    for example in examples:
        by_k.setdefault(len(example.response_ids), []).append(example)
    batches = [
        group[start : start + size]
        for _, group in sorted(by_k.items())
        for start in range(0, len(group), size)
    ]
    if seed is not None:
        random.Random(seed).shuffle(batches)
    return batches


def bounded_replay(old: Sequence[T], fresh: Sequence[T], ratio: float, seed: int) -> list[T]:
    """A warm-started retrain's training set: every fresh item plus at most
    ``floor(ratio * len(fresh))`` old items drawn without replacement (in their order)."""
    count = min(len(old), math.floor(ratio * len(fresh)))
    chosen = sorted(random.Random(seed).sample(range(len(old)), count))
    return [old[i] for i in chosen] + list(fresh)
