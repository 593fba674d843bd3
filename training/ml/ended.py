"""Comparisons of K responses that all ended under the truncation rule, as the paper shows
labelers: candidates are sampled per query (from one prompt pass) until K of them ended, in
rounds sized from the measured ended fraction; queries that never end are dropped, never
padded with responses that did not end."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from .config import SamplingConfig
from .sampling import (
    ProgressCallback,
    Sample,
    TruncationRules,
    prepare_queries,
    sample_batch,
)

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
    texts, query_token_ids = prepare_queries(tokenizer, queries, config)
    rules = TruncationRules.of(tokenizer, config)
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
                response_ids, mask, ended = sample_batch(
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
