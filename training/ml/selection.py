"""Which comparisons labelers see: ``uniform`` (the prompts in turn, the first K responses that
ended: the paper's online distribution) or ``uncertainty`` (more candidates than K per prompt
and more prompts than needed are sampled, scored by the current reward model, and the prompts
and K-sets whose K-way choice distribution has the highest entropy are shown), with a share of
uniformly chosen comparisons kept apart for unbiased evaluation.

Pure Python (no torch, no Django): the admin validates :class:`SelectionConfig` in the web
process; the sampler and ``bench/label_efficiency.py`` rank with the same functions.

The choice distribution is the reward model's own: softmax over the K **raw** rewards, which
is what the K-way loss trains (the gain/bias normalization rescales rewards and would change
the entropy without changing what the model believes).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

UNIFORM = "uniform"
UNCERTAINTY = "uncertainty"
STRATEGIES = (UNIFORM, UNCERTAINTY)
ENTROPY = "entropy"
DISAGREEMENT = "disagreement"
MEASURES = (ENTROPY, DISAGREEMENT)


@dataclass
class SelectionConfig:
    """How the sampler chooses the comparisons it adds to a task's buffer."""

    strategy: str = UNIFORM
    """``uniform`` or ``uncertainty`` (a task's own field takes precedence)."""
    uniform_share: float = 0.25
    """With ``uncertainty``: at least this fraction of a policy version's comparisons is chosen
    uniformly (stored as ``uniform``): the unbiased sample that measures the reward model
    and follows the paper's online distribution. 1.0 is the uniform strategy."""
    pool_factor: int = 2
    """With ``uncertainty``: candidate prompts sampled and scored per comparison chosen by
    uncertainty (the others are not shown)."""
    responses_per_prompt: int = 0
    """With ``uncertainty``: ended responses sampled per candidate prompt, among which the K
    shown are chosen (0: 1.5 * K, rounded up). Sampling costs about pool_factor *
    responses_per_prompt / K times as much per comparison chosen by uncertainty."""

    measure: str = ENTROPY
    """With ``uncertainty``: ``entropy`` of the reward model's K-way choice distribution, or
    ``disagreement`` of its ensemble's members (needs ``reward.ensemble_members`` >= 2): the
    mutual information between choice and member, which leaves out K-sets that every member
    calls a tie (those have the highest entropy and teach nothing)."""

    def validate(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(f"measure: must be one of {', '.join(MEASURES)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy: must be one of {', '.join(STRATEGIES)}")
        if not 0 <= self.uniform_share <= 1:
            raise ValueError("uniform_share: must be in [0, 1]")
        if self.pool_factor < 1:
            raise ValueError("pool_factor: must be >= 1")
        if self.responses_per_prompt < 0:
            raise ValueError("responses_per_prompt: must be >= 0 (0: 1.5 * K)")

    def responses_for(self, k: int) -> int:
        """Ended responses per candidate prompt for K (at least K)."""
        return max(k, self.responses_per_prompt or math.ceil(1.5 * k))


def choice_distribution(rewards: Sequence[float]) -> list[float]:
    """softmax(rewards): the K-way choice probabilities the K-way loss trains."""
    if not rewards:
        raise ValueError("no rewards")
    top = max(rewards)
    weights = [math.exp(r - top) for r in rewards]
    total = sum(weights)
    return [w / total for w in weights]


def _entropy(probabilities: Sequence[float]) -> float:
    return -sum(p * math.log(p) for p in probabilities if p > 0)


def choice_entropy(rewards: Sequence[float]) -> float:
    """Entropy (nats) of the K-way choice distribution softmax(rewards); log K when all tie."""
    return _entropy(choice_distribution(rewards))


def best_k_subset(rewards: Sequence[float], k: int) -> tuple[tuple[int, ...], float]:
    """The K of a prompt's candidate responses whose choice distribution has the highest
    entropy, as indices in sampling order, and that entropy. The best set is a run of K
    consecutive rewards in sorted order (the tests check it against every subset), so this
    looks at the C - K + 1 runs only. Ties go to the earliest-sampled run."""
    if not 1 <= k <= len(rewards):
        raise ValueError(f"need at least K={k} rewards, got {len(rewards)}")
    order = sorted(range(len(rewards)), key=lambda i: (rewards[i], i))
    best: tuple[tuple[int, ...], float] | None = None
    for start in range(len(order) - k + 1):
        chosen = tuple(sorted(order[start : start + k]))
        entropy = choice_entropy([rewards[i] for i in chosen])
        if best is None or entropy > best[1] + 1e-12:
            best = (chosen, entropy)
    assert best is not None
    return best


@dataclass(frozen=True)
class Ranked:
    """A candidate prompt chosen by uncertainty: its index, the K responses to show (indices
    into its candidates, in sampling order) and their choice entropy."""

    candidate: int
    responses: tuple[int, ...]
    entropy: float


def rank_by_uncertainty(rewards: Sequence[Sequence[float]], k: int, n: int) -> list[Ranked]:
    """The ``n`` candidates (``rewards[i]``: raw rewards of candidate i's responses) whose best
    K-set has the highest choice entropy, most uncertain first; ties keep candidate order."""
    return _most(
        [
            Ranked(i, *best_k_subset(values, k))
            for i, values in enumerate(rewards)
            if len(values) >= k
        ],
        n,
    )


def _most(scored: list[Ranked], n: int) -> list[Ranked]:
    """The ``n`` highest-scored, highest first; ties keep candidate order."""
    return sorted(scored, key=lambda r: (-r.entropy, r.candidate))[: max(0, n)]


def disagreement(member_rewards: Sequence[Sequence[float]]) -> float:
    """How much an ensemble's members disagree about one K-set (``member_rewards[e]``: member
    e's raw rewards of the K responses): the mutual information between the choice and the
    member, H(mean of the members' choice distributions) - mean of their entropies (nats).
    0 when every member holds the same distribution, a flat one included: a K-set whose
    responses the members agree are equal (a tie no label can teach) is not worth a label,
    although its choice entropy is the highest there is."""
    if not member_rewards or not member_rewards[0]:
        raise ValueError("no rewards")
    distributions = [choice_distribution(r) for r in member_rewards]
    mean = [sum(column) / len(distributions) for column in zip(*distributions, strict=True)]
    spread = _entropy(mean) - sum(map(_entropy, distributions)) / len(distributions)
    return max(0.0, spread)  # rounding can leave -1e-17


MAX_SUBSETS = 500
"""Above this many K-sets per prompt, :func:`most_disputed_k_subset` looks only at the runs
of K consecutive responses in order of the members' mean reward."""


def most_disputed_k_subset(
    member_rewards: Sequence[Sequence[float]], k: int
) -> tuple[tuple[int, ...], float]:
    """The K of a prompt's C candidate responses the members disagree about most
    (``member_rewards``: E rows of C raw rewards), as indices in sampling order, and that
    disagreement. Every K-set is tried (up to :data:`MAX_SUBSETS`); ties go to the first in
    lexicographic order."""
    count = len(member_rewards[0]) if member_rewards else 0
    if not 1 <= k <= count:
        raise ValueError(f"need at least K={k} rewards, got {count}")
    if math.comb(count, k) <= MAX_SUBSETS:
        subsets: list[tuple[int, ...]] = list(itertools.combinations(range(count), k))
    else:
        mean = [sum(column) / len(member_rewards) for column in zip(*member_rewards, strict=True)]
        order = sorted(range(count), key=lambda i: (mean[i], i))
        subsets = [tuple(sorted(order[s : s + k])) for s in range(count - k + 1)]
    best: tuple[tuple[int, ...], float] | None = None
    for subset in subsets:
        value = disagreement([[member[i] for i in subset] for member in member_rewards])
        if best is None or value > best[1] + 1e-12:
            best = (subset, value)
    assert best is not None
    return best


def rank_by_disagreement(
    member_rewards: Sequence[Sequence[Sequence[float]]], k: int, n: int
) -> list[Ranked]:
    """The ``n`` candidates (``member_rewards[i][e]``: member e's raw rewards of candidate i's
    responses) whose most disputed K-set has the highest disagreement, most disputed first;
    ties keep candidate order. ``Ranked.entropy`` holds the disagreement."""
    return _most(
        [
            Ranked(i, *most_disputed_k_subset(members, k))
            for i, members in enumerate(member_rewards)
            if members and len(members[0]) >= k
        ],
        n,
    )


def uniform_quota(*, wanted: int, share: float, uniform_so_far: int, total_so_far: int) -> int:
    """How many of ``wanted`` new comparisons to choose uniformly so that, counted with the
    ``total_so_far`` comparisons (``uniform_so_far`` of them uniform), at least ``share`` of
    them are uniform: the share holds over a version's comparisons however small each top-up
    is (rounding each top-up on its own would never choose one uniformly in top-ups of one)."""
    if wanted <= 0:
        return 0
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], got {share}")
    needed = math.ceil(share * (total_so_far + wanted) - 1e-9) - uniform_so_far
    return min(wanted, max(0, needed))


def uniform_picks(count: int, candidates: int, rng: random.Random) -> list[int]:
    """``count`` distinct candidate indices drawn uniformly (all of them when fewer)."""
    return sorted(rng.sample(range(candidates), min(count, candidates)))
