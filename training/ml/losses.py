"""Pure loss and statistics helpers (no model, no state): K-way reward loss, GAE,
whitening, PPO clipped losses, per-token KL-penalized rewards and advantages, reward
normalization."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def kway_reward_loss(rewards: Tensor, best: Tensor) -> Tensor:
    """Softmax cross-entropy over the K rewards of each label against the chosen index.

    rewards: (B, K) scalar rewards; best: (B,) chosen index in [0, K). Returns the mean loss.
    """
    return F.cross_entropy(rewards, best)


def ensemble_kway_loss(member_rewards: Tensor, best: Tensor, weights: Tensor) -> Tensor:
    """The K-way loss of each ensemble member on its bootstrap weights, averaged over labels and
    members. member_rewards: (B, K, E); best: (B,); weights: (B, E) (all ones: every member
    trains on every label, and with E = 1 this is :func:`kway_reward_loss`)."""
    per_label = F.cross_entropy(
        member_rewards.permute(0, 2, 1).reshape(-1, member_rewards.shape[1]),  # (B*E, K)
        best.repeat_interleave(member_rewards.shape[2]),  # (B*E,)
        reduction="none",
    ).view(weights.shape)  # (B, E)
    return (per_label * weights).mean()


def bootstrap_weights(keys: Sequence[int | str], members: int, seed: int) -> Tensor:
    """Double-or-nothing bootstrap weights (B, E): each member trains on about half the labels,
    each counted twice, drawn per (label key, member) so that a label keeps its weights across
    retrains and data-parallel ranks. One member: all ones."""
    if members == 1:
        return torch.ones(len(keys), 1)
    return torch.tensor(
        [
            [
                2.0 * random.Random(f"{seed}-{key}-{member}").getrandbits(1)
                for member in range(members)
            ]
            for key in keys
        ]
    )


def kway_accuracy(rewards: Tensor, best: Tensor) -> Tensor:
    """Fraction of labels whose chosen response gets the highest reward. rewards: (B, K)."""
    return (rewards.argmax(dim=-1) == best).float().mean()


def masked_mean(values: Tensor, mask: Tensor | None = None) -> Tensor:
    if mask is None:
        return values.mean()
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_var(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Unbiased (Bessel-corrected) variance over the masked entries."""
    if mask is None:
        return values.var()
    mean = masked_mean(values, mask)
    count = mask.sum()
    var = masked_mean((values - mean) ** 2, mask)
    return var * count / (count - 1).clamp(min=1)


def whiten(
    values: Tensor, mask: Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8
) -> Tensor:
    """Scale to unit variance over the masked entries; also center unless ``shift_mean`` is
    False (then the mean is kept). Masked-out entries are returned as 0 when a mask is given."""
    mean = masked_mean(values, mask)
    var = masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened if mask is None else whitened * mask


def gae(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over right-padded response tokens.

    rewards, values, mask: (B, T); an episode ends after its last masked-in token (the value
    after it is 0). Returns (advantages, returns), both (B, T), zero where masked out.
    """
    values = values * mask
    rewards = rewards * mask
    steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(rewards[:, 0])  # (B,)
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(last_gae)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_gae = (delta + gamma * lam * last_gae) * mask[:, t]
        advantages[:, t] = last_gae
    returns = advantages + values
    return advantages, returns


def logprobs_from_logits(logits: Tensor, tokens: Tensor) -> Tensor:
    """Log-probability of each token. logits: (B, T, V); tokens: (B, T) -> (B, T)."""
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of each categorical distribution. logits: (B, T, V) -> (B, T)."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def kl_penalized_rewards(
    logprobs: Tensor, ref_logprobs: Tensor, scores: Tensor, mask: Tensor, beta: float
) -> tuple[Tensor, Tensor]:
    """Per-token reward -beta * (logp - logp_ref), plus the score at each response's last token.

    logprobs, ref_logprobs, mask: (B, T); scores: (B,). Returns (rewards (B, T), kl (B, T)).
    """
    kl = (logprobs - ref_logprobs) * mask  # (B, T)
    rewards = -beta * kl
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)  # (B,) index of the last response token
    rewards = rewards.scatter_add(1, last.unsqueeze(1), scores.unsqueeze(1).to(rewards.dtype))
    return rewards, kl


def penalized_advantages(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    values: Tensor,
    scores: Tensor,
    mask: Tensor,
    beta: float,
    whiten_rewards: bool = True,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """From a rollout to PPO's targets: per-token rewards -beta * KL plus the score at the last
    kept token, rewards whitened without shifting their mean (statistics over kept tokens
    only), GAE, whitened advantages. Tokens after a response's end (mask 0) take no part.

    logprobs, ref_logprobs (policy at rollout, reference), values, mask: (B, T); scores: (B,).
    Returns (advantages, returns, rewards, kl), each (B, T) and 0 where masked out.
    """
    rewards, kl = kl_penalized_rewards(logprobs * mask, ref_logprobs * mask, scores, mask, beta)
    if whiten_rewards:
        rewards = whiten(rewards, mask, shift_mean=False)
    advantages, returns = gae(rewards, values * mask, mask, gamma, lam)
    return whiten(advantages, mask), returns, rewards, kl


def ppo_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_range: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Clipped surrogate loss. All inputs (B, T). Returns (loss, clip fraction, approx KL)."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = 0.5 * masked_mean(log_ratio**2, mask)
    return loss, clip_fraction.detach(), approx_kl.detach()


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range: float
) -> tuple[Tensor, Tensor]:
    """Clipped value loss 0.5 * max((v - R)^2, (v_clipped - R)^2). Inputs (B, T).
    Returns (loss, clip fraction)."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped_loss = (values - returns) ** 2
    clipped_loss = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_loss, clipped_loss), mask)
    clip_fraction = masked_mean((clipped_loss > unclipped_loss).float(), mask)
    return loss, clip_fraction.detach()


def normalization_gain_bias(raw_scores: Tensor, eps: float = 1e-8) -> tuple[float, float]:
    """Gain and bias such that ``gain * raw + bias`` has mean 0 and std 1 over ``raw_scores``."""
    raw_scores = raw_scores.double()
    mean = raw_scores.mean()
    std = raw_scores.std(unbiased=False)
    gain = 1.0 / (std + eps)
    return float(gain), float(-mean * gain)
