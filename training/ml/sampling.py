"""Sampling K responses per query: one prompt pass per query, its key/value cache expanded K
times, then token-by-token sampling from logits / temperature, then the truncation rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from .config import SamplingConfig
from .models import cache_argument, causal_lm, model_device

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(done, total)``."""


@dataclass
class Sample:
    """One query and its K responses, with the exact token ids (never re-tokenize)."""

    query: str
    query_token_ids: list[int]
    responses: list[str]
    response_token_ids: list[list[int]]
    ended: list[bool]
    """True when the response ended at a truncation token (else it earns the penalty)."""


@lru_cache(maxsize=16)
def _truncation_ids(tokenizer: PreTrainedTokenizerBase, truncate_token: str) -> frozenset[int]:
    ids = range(len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in ids])
    if truncate_token.isspace():
        # A newline often comes merged with the indentation after it ("\n   "): any token
        # holding one ends the response (the summary ends at the line break).
        return frozenset(i for i, t in zip(ids, texts, strict=True) if truncate_token in t)
    return frozenset(i for i, text in zip(ids, texts, strict=True) if text.endswith(truncate_token))


def truncation_token_ids(
    tokenizer: PreTrainedTokenizerBase, truncate_token: str | None
) -> list[int]:
    """Ids of the tokens whose text ends with ``truncate_token`` (e.g. "."), or for a
    whitespace one (the summarization task's "\\n") holds it anywhere."""
    if truncate_token is None:
        return []
    return sorted(_truncation_ids(tokenizer, truncate_token))


def truncate_responses(
    response_ids: Tensor,
    truncation_ids: Sequence[int],
    truncate_after: int,
    stop_ids: Sequence[int] = (),
) -> tuple[Tensor, Tensor]:
    """The truncation rule. response_ids: (N, R) sampled tokens.

    A response is cut after its first truncation token at 0-based position >= truncate_after
    (it has then ``ended``). A stop token (EOS) ends it at any position, counting as ended
    only at or after ``truncate_after``. Without truncation ids every response counts as
    ended. Returns (mask (N, R) of kept tokens, ended (N,) bool).
    """
    n, length = response_ids.shape
    positions = torch.arange(length, device=response_ids.device).expand(n, length)
    late = positions >= truncate_after
    if truncation_ids:
        is_cut = (
            torch.isin(response_ids, torch.tensor(list(truncation_ids), device=response_ids.device))
            & late
        )
    else:
        is_cut = torch.zeros_like(late)
    is_stop = (
        torch.isin(response_ids, torch.tensor(list(stop_ids), device=response_ids.device))
        if stop_ids
        else torch.zeros_like(late)
    )
    ends = is_cut | is_stop
    big = torch.full_like(positions, length)
    first_end = torch.where(ends, positions, big).min(dim=1).values  # (N,)
    lengths = torch.clamp(first_end + 1, max=length)
    mask = positions < lengths[:, None]
    has_end = first_end < length
    end_is_late = first_end >= truncate_after
    ended = has_end & end_is_late if truncation_ids else ~has_end | end_is_late
    return mask, ended


def pad_left(
    sequences: Sequence[Sequence[int]], pad_id: int, width: int | None = None
) -> tuple[Tensor, Tensor]:
    """(ids (N, T), mask (N, T)) with sequences aligned right; T is the longest sequence's
    length, or ``width`` (at least as long) so that every rank pads a batch alike."""
    width = width or max(1, max(len(s) for s in sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(list(seq))
            mask[row, width - len(seq) :] = 1
    return ids, mask


def pad_right(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """(ids (N, T), mask (N, T)) with sequences aligned left."""
    width = max(1, max(len(s) for s in sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, : len(seq)] = torch.tensor(list(seq))
            mask[row, : len(seq)] = 1
    return ids, mask


@torch.no_grad()
def sample_tokens(
    model: nn.Module,
    query_ids: Tensor,
    query_mask: Tensor,
    k: int,
    response_length: int,
    temperature: float,
    generator: torch.Generator | None = None,
    stop_early: Callable[[Tensor], bool] | None = None,
    draw: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Sample K continuations per query from one prompt pass.

    query_ids, query_mask: (B, Tq) left-padded. Returns response ids (B*K, R); rows
    b*K..b*K+K-1 continue query b. ``stop_early(tokens so far)`` may end the loop.
    ``draw(probs (B*K, V)) -> tokens (B*K, 1)`` replaces sampling from ``generator``
    (:func:`shared_noise_draw`).
    """
    lm = causal_lm(model)
    device = model_device(lm)
    query_ids, query_mask = query_ids.to(device), query_mask.to(device)
    positions = (query_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, Tq)
    out = model(
        input_ids=query_ids,
        attention_mask=query_mask,
        position_ids=positions,
        use_cache=True,
        logits_to_keep=1,
    )
    cache = out.past_key_values
    if k > 1:
        cache.batch_repeat_interleave(k)
    logits = out.logits[:, -1].repeat_interleave(k, 0)  # (B*K, V)
    mask = query_mask.repeat_interleave(k, 0)  # (B*K, Tq)
    next_position = mask.sum(-1, keepdim=True)  # (B*K, 1)
    tokens: list[Tensor] = []
    for step in range(response_length):
        probs = torch.softmax(logits.float() / temperature, dim=-1)  # (B*K, V)
        if draw is not None:
            token = draw(probs)
        elif generator is not None and generator.device != probs.device:
            token = torch.multinomial(probs.cpu(), 1, generator=generator).to(device)
        else:
            token = torch.multinomial(probs, 1, generator=generator)  # (B*K, 1)
        tokens.append(token)
        if step == response_length - 1 or (stop_early and stop_early(torch.cat(tokens, 1))):
            break
        mask = torch.cat([mask, torch.ones_like(token)], dim=1)
        out = lm(
            input_ids=token,
            attention_mask=mask,
            position_ids=next_position + step,
            use_cache=True,
            **cache_argument(lm, cache),
        )
        cache = out.past_key_values
        logits = out.logits[:, -1]
    sampled = torch.cat(tokens, dim=1)  # (B*K, r <= R)
    if sampled.shape[1] < response_length:  # stopped early: pad with the last token
        pad = sampled[:, -1:].expand(-1, response_length - sampled.shape[1])
        sampled = torch.cat([sampled, pad], dim=1)
    return sampled


def shared_noise_draw(
    generator: torch.Generator, rows: Tensor, total_rows: int
) -> Callable[[Tensor], Tensor]:
    """Token draws whose randomness belongs to a row of the whole batch, not to a process:
    each step draws exponential noise for all ``total_rows`` rows from ``generator`` (seeded
    alike on every rank) and this process uses its ``rows``; argmax(p / noise) is a sample of
    p (the exponential race, a form of the Gumbel-max trick). So N data-parallel ranks sample
    what one process sampling the whole batch would."""

    def draw(probs: Tensor) -> Tensor:  # (n, V) -> (n, 1)
        shape = (total_rows, probs.shape[-1])
        noise = torch.empty(shape, device=generator.device).exponential_(generator=generator)
        mine = noise[rows.to(noise.device)].to(probs.device).clamp_min_(1e-20)  # (n, V)
        return (probs / mine).argmax(dim=-1, keepdim=True)

    return draw


def encode_queries(
    tokenizer: PreTrainedTokenizerBase, queries: Sequence[str], query_length: int
) -> list[list[int]]:
    """Token ids of each query, keeping the last ``query_length`` tokens."""
    encoded = tokenizer(list(queries), add_special_tokens=False)["input_ids"]
    return [list(ids[-query_length:]) for ids in encoded]


def prepare_queries(
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str] | Sequence[Sequence[int]],
    config: SamplingConfig,
) -> tuple[list[str | None], list[list[int]]]:
    """(query texts or None, query token ids): strings are encoded (keeping their last
    ``query_length`` tokens), token id lists are taken as they are."""
    if queries and isinstance(queries[0], str):
        texts: list[str | None] = list(queries)  # type: ignore[arg-type]
        return texts, encode_queries(tokenizer, queries, config.query_length)  # type: ignore[arg-type]
    return [None] * len(queries), [list(q) for q in queries]  # type: ignore[arg-type]


@dataclass(frozen=True)
class TruncationRules:
    """The truncation rule's token ids for one tokenizer and config."""

    cut_ids: list[int]
    stop_ids: list[int]
    pad_id: int

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase, config: SamplingConfig) -> TruncationRules:
        return cls(
            cut_ids=truncation_token_ids(tokenizer, config.truncate_token),
            stop_ids=[tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [],
            pad_id=int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
        )


def sample_batch(
    model: nn.Module,
    batch: Sequence[Sequence[int]],
    k: int,
    config: SamplingConfig,
    rules: TruncationRules,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``k`` responses to each query of ``batch`` from one prompt pass, with the truncation
    rule applied: (response ids (B*k, R), kept mask (B*k, R), ended (B*k,))."""
    query_ids, query_mask = pad_left(batch, rules.pad_id)

    def all_decided(tokens: Tensor) -> bool:
        sentinel = torch.full_like(tokens[:, :1], -1)  # never an end token
        mask, _ = truncate_responses(
            torch.cat([tokens, sentinel], 1), rules.cut_ids, config.truncate_after, rules.stop_ids
        )
        return bool((~mask[:, -1]).all())

    response_ids = sample_tokens(
        model,
        query_ids,
        query_mask,
        k,
        config.response_length,
        config.temperature,
        generator,
        stop_early=all_decided,
    )
    mask, ended = truncate_responses(
        response_ids, rules.cut_ids, config.truncate_after, rules.stop_ids
    )
    return response_ids, mask, ended


def sample_responses(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str] | Sequence[Sequence[int]],
    config: SamplingConfig,
    generator: torch.Generator | None = None,
    progress: ProgressCallback | None = None,
) -> list[Sample]:
    """Sample ``config.k`` responses for each query (strings, or token id lists as they are),
    ended or not (PPO scores the ones that did not end with the penalty)."""
    config.validate()
    texts, query_token_ids = prepare_queries(tokenizer, queries, config)
    rules = TruncationRules.of(tokenizer, config)
    samples: list[Sample] = []
    for start in range(0, len(query_token_ids), config.batch_size):
        batch = query_token_ids[start : start + config.batch_size]
        batch_texts = texts[start : start + config.batch_size]
        response_ids, mask, ended = sample_batch(model, batch, config.k, config, rules, generator)
        for b, ids in enumerate(batch):
            rows = range(b * config.k, (b + 1) * config.k)
            kept = [response_ids[r][mask[r]].tolist() for r in rows]
            samples.append(
                Sample(
                    query=batch_texts[b] or str(tokenizer.decode(ids)),
                    query_token_ids=list(ids),
                    responses=[str(tokenizer.decode(r, skip_special_tokens=True)) for r in kept],
                    response_token_ids=kept,
                    ended=[bool(ended[r]) for r in rows],
                )
            )
        if progress is not None:
            progress(min(start + config.batch_size, len(query_token_ids)), len(query_token_ids))
    return samples
