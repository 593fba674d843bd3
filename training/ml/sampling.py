"""Sampling K responses per query: one prompt pass per query, its key/value cache expanded K
times, then token-by-token sampling from logits / temperature, then the truncation rule."""

from __future__ import annotations

import math
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
    return frozenset(i for i, text in zip(ids, texts, strict=True) if text.endswith(truncate_token))


def truncation_token_ids(
    tokenizer: PreTrainedTokenizerBase, truncate_token: str | None
) -> list[int]:
    """Ids of the tokens whose text ends with ``truncate_token`` (e.g. "." or "\\n")."""
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


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """(ids (N, T), mask (N, T)) with sequences aligned right."""
    width = max(1, max(len(s) for s in sequences))
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
) -> Tensor:
    """Sample K continuations per query from one prompt pass.

    query_ids, query_mask: (B, Tq) left-padded. Returns response ids (B*K, R); rows
    b*K..b*K+K-1 continue query b. ``stop_early(tokens so far)`` may end the loop.
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
        if generator is not None and generator.device != probs.device:
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


def encode_queries(
    tokenizer: PreTrainedTokenizerBase, queries: Sequence[str], query_length: int
) -> list[list[int]]:
    """Token ids of each query, keeping the last ``query_length`` tokens."""
    encoded = tokenizer(list(queries), add_special_tokens=False)["input_ids"]
    return [list(ids[-query_length:]) for ids in encoded]


def _prepare_queries(
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
class _Rules:
    """The truncation rule's token ids for one tokenizer and config."""

    cut_ids: list[int]
    stop_ids: list[int]
    pad_id: int

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase, config: SamplingConfig) -> _Rules:
        return cls(
            cut_ids=truncation_token_ids(tokenizer, config.truncate_token),
            stop_ids=[tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [],
            pad_id=int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
        )


def _sample_batch(
    model: nn.Module,
    batch: Sequence[Sequence[int]],
    k: int,
    config: SamplingConfig,
    rules: _Rules,
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
    texts, query_token_ids = _prepare_queries(tokenizer, queries, config)
    rules = _Rules.of(tokenizer, config)
    samples: list[Sample] = []
    for start in range(0, len(query_token_ids), config.batch_size):
        batch = query_token_ids[start : start + config.batch_size]
        batch_texts = texts[start : start + config.batch_size]
        response_ids, mask, ended = _sample_batch(model, batch, config.k, config, rules, generator)
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


# --- only responses that ended (what labelers see) ----------------------------------------

CANDIDATES_PER_K = 4
"""Default candidates per query in the first round: 4*K. The embedded model ends about a
third of its responses under the cpu-small rule, so 16 candidates give K=4 ended ones for
most queries at once, and the rounds after size themselves from the measured fraction."""
DEFAULT_MAX_ROUNDS = 3
CONFIDENCE = 0.95
"""A re-sampling round draws enough candidates that a query gets its missing ended
responses with at least this probability, if it ends as often as the average query."""


@dataclass(frozen=True)
class SamplingRound:
    queries: int
    """Queries sampled in this round (the first: all; later: those still short of K)."""
    candidates: int
    """Responses sampled in this round (queries x candidates per query)."""
    ended: int
    """Of which ended under the truncation rule."""


@dataclass
class EndedSamples:
    """The result of :func:`sample_ended_comparisons`, aligned with the queries."""

    samples: list[Sample | None]
    """K ended responses per query (the first K in sampling order); None: dropped."""
    rounds: list[SamplingRound]

    @property
    def candidates(self) -> int:
        """Responses sampled in all rounds."""
        return sum(r.candidates for r in self.rounds)

    @property
    def ended(self) -> int:
        """Sampled responses that ended, in all rounds (kept or not)."""
        return sum(r.ended for r in self.rounds)

    @property
    def ended_fraction(self) -> float | None:
        return self.ended / self.candidates if self.candidates else None

    @property
    def dropped(self) -> list[int]:
        """Indices of the queries that never got K ended responses."""
        return [i for i, s in enumerate(self.samples) if s is None]

    @property
    def kept(self) -> list[tuple[int, Sample]]:
        """(query index, sample) of the queries that got K ended responses."""
        return [(i, s) for i, s in enumerate(self.samples) if s is not None]


def _at_least(n: int, p: float, need: int) -> float:
    """P(Binomial(n, p) >= need)."""
    if need > n:
        return 0.0
    below = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(need))
    return max(0.0, 1.0 - below)


def candidates_for(
    need: int,
    ended_fraction: float | None,
    *,
    low: int,
    high: int,
    confidence: float = CONFIDENCE,
) -> int:
    """The fewest candidates in [low, high] that give ``need`` ended responses with
    probability >= ``confidence`` when each ends with probability ``ended_fraction``
    (``high`` when none would, or the fraction is unknown or zero)."""
    low, high = max(low, need), max(high, low, need)
    if ended_fraction is None or ended_fraction <= 0:
        return high
    p = min(1.0, ended_fraction)
    for n in range(low, high + 1):
        if _at_least(n, p, need) >= confidence:
            return n
    return high


def sample_ended_comparisons(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    queries: Sequence[str] | Sequence[Sequence[int]],
    config: SamplingConfig,
    generator: torch.Generator | None = None,
    candidates: int | None = None,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    max_candidates: int | None = None,
    progress: ProgressCallback | None = None,
) -> EndedSamples:
    """K (``config.k``) responses per query that all ended under the truncation rule, as the
    paper shows labelers: never padded with responses that did not end.

    Round 1 samples ``candidates`` (default 4*K) responses per query from one prompt pass each
    and keeps the first K that ended; copies of one query (the same token ids) share their
    ended responses, so one copy's surplus completes another. Each later round (up to
    ``max_rounds`` in all) samples again for the queries still short: per query, enough
    candidates that its missing ended responses come with probability ``CONFIDENCE`` at the
    ended fraction those queries showed so far (at most ``max_candidates``, default 4 x
    ``candidates``; fewer queries per pass then, so that a pass holds no more rows than in
    round 1). Queries still short after the last round are dropped (None). Every sampled
    response counts in the result's ``candidates`` and ``ended``, whether it was kept or not.
    ``progress(done, total)`` counts
    queries settled (kept or dropped).
    """
    config.validate()
    k = config.k
    first = CANDIDATES_PER_K * k if candidates is None else candidates
    cap = 4 * first if max_candidates is None else max_candidates
    if first < k:
        raise ValueError(f"candidates must be >= K={k}, got {first}")
    if cap < first:
        raise ValueError(f"max_candidates must be >= candidates ({first}), got {cap}")
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
    texts, query_token_ids = _prepare_queries(tokenizer, queries, config)
    rules = _Rules.of(tokenizer, config)
    total = len(query_token_ids)
    kept: list[list[list[int]]] = [[] for _ in range(total)]  # the first K ended responses
    # Copies of one query share their ended responses: a copy's surplus fills another copy
    # before it is thrown away (a caller asking for several comparisons of one prompt wastes
    # fewer candidates).
    copies: dict[tuple[int, ...], list[int]] = {}
    for q, ids in enumerate(query_token_ids):
        copies.setdefault(tuple(ids), []).append(q)
    group = [copies[tuple(ids)] for ids in query_token_ids]
    drawn = [0] * total  # candidates sampled per query, in all rounds
    ended_per_query = [0] * total  # of which ended (kept or not)
    rounds: list[SamplingRound] = []
    rows_per_pass = config.batch_size * first  # the memory of a round-1 pass
    short = list(range(total))
    for round_number in range(max_rounds):
        if not short:
            break
        if round_number == 0:
            plan = {q: first for q in short}
        else:
            # The short queries end less often than the average one: size the round from
            # their own candidates so far.
            fraction = sum(ended_per_query[q] for q in short) / sum(drawn[q] for q in short)
            plan = {
                q: candidates_for(k - len(kept[q]), fraction, low=k - len(kept[q]), high=cap)
                for q in short
            }
        round_ended = 0
        for per_query in sorted(set(plan.values())):
            planned = [q for q in short if plan[q] == per_query]
            step = max(1, rows_per_pass // per_query)
            for start in range(0, len(planned), step):
                indices = planned[start : start + step]
                response_ids, mask, ended = _sample_batch(
                    model,
                    [query_token_ids[q] for q in indices],
                    per_query,
                    config,
                    rules,
                    generator,
                )
                for b, q in enumerate(indices):
                    rows = range(b * per_query, (b + 1) * per_query)
                    drawn[q] += per_query
                    for row in rows:
                        if not ended[row]:
                            continue
                        ended_per_query[q] += 1
                        round_ended += 1
                        target = next((c for c in group[q] if len(kept[c]) < k), None)
                        if target is not None:
                            kept[target].append(response_ids[row][mask[row]].tolist())
                if progress is not None:
                    progress(sum(len(ids) >= k for ids in kept), total)
        rounds.append(
            SamplingRound(queries=len(short), candidates=sum(plan.values()), ended=round_ended)
        )
        short = [q for q in short if len(kept[q]) < k]
    if progress is not None and short:
        progress(total, total)  # the short ones are settled: dropped
    samples: list[Sample | None] = []
    for q, ids in enumerate(query_token_ids):
        if len(kept[q]) < k:
            samples.append(None)
            continue
        samples.append(
            Sample(
                query=texts[q] or str(tokenizer.decode(ids)),
                query_token_ids=list(ids),
                responses=[str(tokenizer.decode(r, skip_special_tokens=True)) for r in kept[q]],
                response_token_ids=kept[q],
                ended=[True] * k,
            )
        )
    return EndedSamples(samples=samples, rounds=rounds)
