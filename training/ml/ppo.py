"""PPO with a KL penalty to the original policy (Ziegler et al. 2019), single-file style.

``train_policy`` trains for a chunk of episodes and returns; calling it again with the same
``out_dir`` resumes from the latest checkpoint (weights, optimizer, scheduler, KL controller,
counters, RNG states), so chunked training ends in exactly the state of one long run.
The reward model may change between chunks (the online loop retrains it).
Data-parallel when a torch.distributed process group is initialized (see distributed.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from . import distributed
from .checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from .config import PPOConfig, SamplingConfig
from .kl_control import AdaptiveKLController, FixedKLController
from .losses import (
    entropy_from_logits,
    logprobs_from_logits,
    masked_mean,
    penalized_advantages,
    ppo_policy_loss,
    ppo_value_loss,
)
from .models import (
    PolicyWithValue,
    add_lora,
    load_model,
    load_tokenizer,
    merged_copy,
    model_device,
)
from .sampling import (
    encode_queries,
    pad_left,
    sample_tokens,
    truncate_responses,
    truncation_token_ids,
)

ProgressCallback = Callable[[int, int, dict[str, float]], None]
"""Called after each PPO batch as ``progress(episodes_done_this_call, episodes_this_call,
metrics)``."""


class Scorer(Protocol):
    """Scores (query, response) token id pairs: returns (N,) normalized rewards."""

    def __call__(self, query_ids: list[list[int]], response_ids: list[list[int]]) -> Tensor: ...


class RewardModelScorer:
    """A saved reward model (see reward.py) as a Scorer."""

    def __init__(self, directory: str | Path) -> None:
        from .reward import load_reward_model

        self.model, self.tokenizer, self.meta = load_reward_model(directory)

    def __call__(self, query_ids: list[list[int]], response_ids: list[list[int]]) -> Tensor:
        from .reward import score_token_ids

        pad_id = int(self.tokenizer.pad_token_id or 0)
        return score_token_ids(self.model, query_ids, response_ids, pad_id)


def _build_policy(base: str, config: PPOConfig) -> PolicyWithValue:
    torch.manual_seed(config.seed)
    lm = load_model(base)
    if config.lora_rank:
        return PolicyWithValue(add_lora(lm, config.lora_rank, config.lora_alpha))
    return PolicyWithValue(lm, reference=load_model(base))


def train_policy(
    base: str,
    reward: Scorer | str | Path,
    queries: Sequence[str] | Sequence[Sequence[int]],
    out_dir: str | Path,
    config: PPOConfig | None = None,
    sampling: SamplingConfig | None = None,
    episodes: int | None = None,
    progress: ProgressCallback | None = None,
    checkpoint_every: int = 0,
) -> list[dict[str, float]]:
    """Train (or resume) the policy in ``out_dir`` for ``episodes`` more episodes (default: up
    to ``config.total_episodes``) and checkpoint. Returns the full metrics history (one dict
    per PPO batch). ``checkpoint_every`` > 0 also checkpoints every that many batches."""
    config, sampling = config or PPOConfig(), sampling or SamplingConfig()
    config.validate()
    sampling.validate()
    world, rank = distributed.world_size(), distributed.rank()
    if config.batch_size % world or config.minibatch_size % world:
        raise ValueError("batch_size and minibatch_size must be multiples of the world size")
    local_batch, local_minibatch = config.batch_size // world, config.minibatch_size // world
    micro = max(1, local_minibatch // config.gradient_accumulation_steps)

    # 1. Models, tokenizer, optimizer, LR schedule, KL controller, RNG.
    tokenizer = load_tokenizer(base)
    pad_id = int(tokenizer.pad_token_id or 0)
    if queries and isinstance(queries[0], str):
        query_pool = encode_queries(tokenizer, queries, sampling.query_length)  # type: ignore[arg-type]
    else:
        query_pool = [list(q)[-sampling.query_length :] for q in queries]  # type: ignore[misc]
    if not query_pool:
        raise ValueError("train_policy needs at least one query")
    cut_ids = truncation_token_ids(tokenizer, sampling.truncate_token)
    stop_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    scorer: Scorer = RewardModelScorer(reward) if isinstance(reward, str | Path) else reward
    policy = _build_policy(base, config)
    distributed.broadcast_module(policy)
    parameters = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate, eps=config.adam_eps)
    updates_per_batch = config.ppo_epochs * (config.batch_size // config.minibatch_size)
    total_updates = (config.total_episodes // config.batch_size) * updates_per_batch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        (lambda u: max(0.0, 1.0 - u / total_updates)) if config.lr_decay else (lambda u: 1.0),
    )
    kl_ctl: AdaptiveKLController | FixedKLController = (
        AdaptiveKLController(config.init_kl_coef, config.kl_target, config.horizon())
        if config.adaptive_kl
        else FixedKLController(config.init_kl_coef)
    )
    device = model_device(policy.lm)
    generator = torch.Generator(device=device).manual_seed(config.seed * 7919 + rank)
    step, episodes_done, history = 0, 0, []
    checkpoint = latest_checkpoint(out_dir)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, policy)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        kl_ctl.load_state_dict(state["kl_controller"])
        step, episodes_done, history = state["step"], state["episodes"], state["history"]
        restore_rng_state(state["rng"][rank], generator)
    target = config.total_episodes if episodes is None else episodes_done + episodes
    target = min(target, config.total_episodes)
    start_episodes = episodes_done

    def checkpoint_now() -> None:
        rngs = [rng_state(generator)]
        if world > 1:  # every rank's RNG, gathered on rank 0
            rngs = [None] * world  # type: ignore[list-item]
            torch.distributed.all_gather_object(rngs, rng_state(generator))
        if distributed.is_main():
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "kl_controller": kl_ctl.state_dict(),
                "step": step,
                "episodes": episodes_done,
                "history": history,
                "rng": rngs,
                "base": base,
                "config": config.__dict__,
                "sampling": sampling.__dict__,
            }
            save_checkpoint(out_dir, step, policy, merged_copy(policy.lm), tokenizer, state)
        distributed.barrier()

    while episodes_done + config.batch_size <= target:
        started = time.perf_counter()
        # 2. Queries of this batch: a permutation keyed by (seed, step); this rank's shard.
        order = torch.randperm(
            len(query_pool), generator=torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        ).repeat(config.batch_size // len(query_pool) + 1)[: config.batch_size]
        batch_queries = [query_pool[i] for i in distributed.shard(order.tolist())]
        query_ids, query_mask = (t.to(device) for t in pad_left(batch_queries, pad_id))  # (b, Tq)

        # 3. Rollout: one response per query, logits / temperature, then the truncation rule.
        with torch.no_grad():
            response_ids = sample_tokens(
                policy.lm,
                query_ids,
                query_mask,
                1,
                sampling.response_length,
                sampling.temperature,
                generator,
            )  # (b, R)
            keep, ended = truncate_responses(
                response_ids, cut_ids, sampling.truncate_after, stop_ids
            )
            mask = keep.float()  # (b, R)
            response_ids = torch.where(keep, response_ids, pad_id)
            responses = [r[m].tolist() for r, m in zip(response_ids.cpu(), keep.cpu(), strict=True)]

            # 4. Score: reward model at the last token; the penalty for untruncated responses.
            raw_scores = scorer(batch_queries, responses).float().to(device)  # (b,)
            scores = torch.where(
                ended, raw_scores, torch.tensor(config.penalty_reward, device=device)
            )

            # 5. Old log-probs and values; reference log-probs (adapter off or frozen copy).
            logits, values = policy.logits_and_values(
                query_ids, query_mask, response_ids, keep, sampling.temperature
            )
            old_logprobs = logprobs_from_logits(logits, response_ids) * mask  # (b, R)
            ref_logits, _ = policy.logits_and_values(
                query_ids,
                query_mask,
                response_ids,
                keep,
                sampling.temperature,
                with_values=False,
                reference=True,
            )
            ref_logprobs = logprobs_from_logits(ref_logits, response_ids) * mask
            old_values = values * mask  # type: ignore[operator]
            del logits, ref_logits

            # 6. Per-token rewards (KL penalty + score), whitening, GAE, advantage whitening.
            advantages, returns, _, kl = penalized_advantages(
                old_logprobs,
                ref_logprobs,
                old_values,
                scores,
                mask,
                kl_ctl.value,
                config.whiten_rewards,
                config.gamma,
                config.lam,
            )  # (b, R) each

        # 7. PPO epochs over shuffled minibatches, with gradient accumulation.
        totals: dict[str, float] = {}
        for _ in range(config.ppo_epochs):
            permutation = torch.randperm(local_batch, generator=generator, device=device)
            for mb_start in range(0, local_batch, local_minibatch):
                mb = permutation[mb_start : mb_start + local_minibatch]
                for micro_start in range(0, len(mb), micro):
                    idx = mb[micro_start : micro_start + micro]
                    new_logits, new_values = policy.logits_and_values(
                        query_ids[idx],
                        query_mask[idx],
                        response_ids[idx],
                        keep[idx],
                        sampling.temperature,
                    )
                    new_logprobs = logprobs_from_logits(new_logits, response_ids[idx])
                    pg_loss, pg_clip, approx_kl = ppo_policy_loss(
                        new_logprobs,
                        old_logprobs[idx],
                        advantages[idx],
                        mask[idx],
                        config.clip_range,
                    )
                    assert new_values is not None
                    vf_loss, vf_clip = ppo_value_loss(
                        new_values,
                        old_values[idx],
                        returns[idx],
                        mask[idx],  # type: ignore[arg-type]
                        config.value_clip_range,
                    )
                    loss = pg_loss + config.vf_coef * vf_loss
                    (loss * len(idx) / config.minibatch_size).backward()
                    with torch.no_grad():
                        entropy = masked_mean(entropy_from_logits(new_logits), mask[idx])
                    for name, value in (
                        ("policy_loss", pg_loss),
                        ("value_loss", vf_loss),
                        ("clip_fraction", pg_clip),
                        ("value_clip_fraction", vf_clip),
                        ("approx_kl", approx_kl),
                        ("entropy", entropy),
                    ):
                        totals[name] = totals.get(name, 0.0) + float(value.detach()) * len(idx)
                distributed.all_reduce_gradients(parameters)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)

        # 8. KL controller update with the batch's mean KL (summed over tokens) across ranks.
        sums = torch.tensor(
            [
                kl.sum(1).sum(),
                raw_scores.sum(),
                scores.sum(),
                ended.float().sum(),
                mask.sum(),
                float(local_batch),
            ],
            dtype=torch.float64,
            device=device,
        )
        distributed.all_reduce_sum(sums)
        n = float(sums[5])
        mean_kl = float(sums[0]) / n
        beta = kl_ctl.value
        kl_ctl.update(mean_kl, config.batch_size)
        step += 1
        episodes_done += config.batch_size
        metrics: dict[str, float] = {
            "step": float(step),
            "episodes": float(episodes_done),
            "score": float(sums[1]) / n,
            "score_with_penalty": float(sums[2]) / n,
            "ended_fraction": float(sums[3]) / n,
            "response_length": float(sums[4]) / n,
            "kl": mean_kl,
            "beta": beta,
            "lr": float(scheduler.get_last_lr()[0]),
            "seconds": time.perf_counter() - started,
        }
        count = config.ppo_epochs * local_batch
        metrics.update({name: value / count for name, value in totals.items()})
        history.append(metrics)
        if progress is not None:
            progress(episodes_done - start_episodes, target - start_episodes, metrics)
        if checkpoint_every and step % checkpoint_every == 0:
            checkpoint_now()
    if checkpoint is None or episodes_done > start_episodes:
        checkpoint_now()
    return history
