"""PPO's rollout (steps 2 to 6 of a batch, see ppo.py): sample one response per query, score
it, compute old and reference log-probs and values, then KL-penalized rewards and advantages.

Data-parallel ranks each roll out their shard of the batch's queries (rows rank, rank +
world, ...), with sampling noise that belongs to the batch row (``shared_noise_draw``), then
gather every row: advantages are whitened over the whole batch, and every rank holds the
same batch, as one process running the whole batch would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import distributed, precision
from .config import PPOConfig, SamplingConfig
from .losses import logprobs_from_logits, penalized_advantages
from .models import PolicyWithValue, model_device
from .sampling import (
    TruncationRules,
    pad_left,
    sample_tokens,
    shared_noise_draw,
    truncate_responses,
)

Scorer = Callable[[list[list[int]], list[list[int]]], Tensor]


@dataclass
class Rollout:
    """One PPO batch of B episodes, in the batch's order (identical on every rank)."""

    query_ids: Tensor  # (B, Tq) left-padded
    query_mask: Tensor  # (B, Tq)
    response_ids: Tensor  # (B, R) padding after the cut
    keep: Tensor  # (B, R) bool: tokens kept by the truncation rule
    ended: Tensor  # (B,) bool
    raw_scores: Tensor  # (B,) reward model at the last token
    scores: Tensor  # (B,) with the penalty for responses that did not end
    old_logprobs: Tensor  # (B, R), zero after the cut
    old_values: Tensor  # (B, R)
    advantages: Tensor  # (B, R)
    returns: Tensor  # (B, R)
    kl: Tensor  # (B, R) per-token logp_policy - logp_reference

    @property
    def mask(self) -> Tensor:
        return self.keep.float()  # (B, R)


def collect_rollout(
    policy: PolicyWithValue,
    scorer: Scorer,
    queries: Sequence[Sequence[int]],
    beta: float,
    config: PPOConfig,
    sampling: SamplingConfig,
    rules: TruncationRules,
    generator: torch.Generator,
) -> Rollout:
    """Steps 2 to 6 for the batch's ``queries`` (token ids; every rank passes all of them)."""
    world, rank = distributed.world_size(), distributed.rank()
    device = model_device(policy.lm)
    bf16 = precision.bf16_enabled(config.mixed_precision, device)
    # 2. This rank's queries, padded to the batch's widest so that rows gather alike.
    mine = [list(q) for q in distributed.shard(list(queries))]
    width = max(1, max(len(q) for q in queries))
    query_ids, query_mask = (t.to(device) for t in pad_left(mine, rules.pad_id, width))  # (b, Tq)
    rows = torch.arange(rank, len(queries), world)  # (b,) this rank's rows of the batch
    with torch.no_grad(), precision.autocast(device, bf16):
        # 3. Rollout: one response per query, logits / temperature, then the truncation rule.
        response_ids = sample_tokens(
            policy.lm,
            query_ids,
            query_mask,
            1,
            sampling.response_length,
            sampling.temperature,
            draw=shared_noise_draw(generator, rows, len(queries)),
        )  # (b, R)
        keep, ended = truncate_responses(
            response_ids, rules.cut_ids, sampling.truncate_after, rules.stop_ids
        )
        mask = keep.float()  # (b, R)
        response_ids = torch.where(keep, response_ids, rules.pad_id)
        responses = [r[m].tolist() for r, m in zip(response_ids.cpu(), keep.cpu(), strict=True)]

        # 4. Score: reward model at the last token; the penalty for untruncated responses.
        raw_scores = scorer(mine, responses).float().to(device)  # (b,)
        penalty = torch.tensor(config.penalty_reward, device=device)
        scores = torch.where(ended, raw_scores, penalty)

        # 5. Old log-probs and values; reference log-probs (adapter off or frozen copy).
        logits, values = policy.logits_and_values(
            query_ids, query_mask, response_ids, keep, sampling.temperature
        )
        old_logprobs = logprobs_from_logits(logits, response_ids) * mask  # (b, R)
        del logits
        ref_logits, _ = policy.logits_and_values(
            query_ids,
            query_mask,
            response_ids,
            keep,
            sampling.temperature,
            with_values=False,
            reference=True,
        )
        ref_logprobs = logprobs_from_logits(ref_logits, response_ids) * mask  # (b, R)
        del ref_logits
        assert values is not None
        old_values = values * mask  # (b, R)

    # Every rank's rows, in the batch's order.
    (
        query_ids,
        query_mask,
        response_ids,
        keep,
        ended,
        raw_scores,
        scores,
        old_logprobs,
        ref_logprobs,
        old_values,
    ) = (
        distributed.gather_rows(t)
        for t in (
            query_ids,
            query_mask,
            response_ids,
            keep,
            ended,
            raw_scores,
            scores,
            old_logprobs,
            ref_logprobs,
            old_values,
        )
    )

    # 6. Per-token rewards (KL penalty + score), whitening, GAE, advantage whitening.
    advantages, returns, _, kl = penalized_advantages(
        old_logprobs,
        ref_logprobs,
        old_values,
        scores,
        keep.float(),
        beta,
        config.whiten_rewards,
        config.gamma,
        config.lam,
    )  # (B, R) each
    return Rollout(
        query_ids=query_ids,
        query_mask=query_mask,
        response_ids=response_ids,
        keep=keep,
        ended=ended,
        raw_scores=raw_scores,
        scores=scores,
        old_logprobs=old_logprobs,
        old_values=old_values,
        advantages=advantages,
        returns=returns,
        kl=kl,
    )
