"""PPO with a KL penalty to the original policy (Ziegler et al. 2019), single-file style.

``train_policy`` trains for a chunk of episodes and returns; calling it again with the same
``out_dir`` resumes from the latest checkpoint (weights, optimizer, scheduler, KL controller,
counters, RNG states), so chunked training ends in exactly the state of one long run.
The reward model may change between chunks (the online loop retrains it).
Data-parallel when a torch.distributed process group is initialized: the policy in DDP,
each rank rolling out and training on its rows of every batch and minibatch, with randomness
that belongs to the batch (distributed.py, rollout.py), so N ranks train what one process
would. ``mixed_precision`` runs the forward passes under bf16 autocast (precision.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from . import distributed, precision
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
from .rollout import collect_rollout
from .sampling import TruncationRules, encode_queries

LOSS_METRICS = (
    "policy_loss",
    "value_loss",
    "clip_fraction",
    "value_clip_fraction",
    "approx_kl",
    "entropy",
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


def _synchronized_clock(device: torch.device) -> float:
    """perf_counter once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


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
    # Micro-batches keep their size (what fits a GPU's memory) on any number of processes.
    micro = max(
        1,
        min(
            config.minibatch_size // world,
            config.minibatch_size // config.gradient_accumulation_steps,
        ),
    )

    # 1. Models, tokenizer, optimizer, LR schedule, KL controller, RNG.
    tokenizer = load_tokenizer(base)
    if queries and isinstance(queries[0], str):
        query_pool = encode_queries(tokenizer, queries, sampling.query_length)  # type: ignore[arg-type]
    else:
        query_pool = [list(q)[-sampling.query_length :] for q in queries]  # type: ignore[misc]
    if not query_pool:
        raise ValueError("train_policy needs at least one query")
    rules = TruncationRules.of(tokenizer, sampling)
    scorer: Scorer = RewardModelScorer(reward) if isinstance(reward, str | Path) else reward
    policy = _build_policy(base, config)
    parameters = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate, eps=config.adam_eps)
    updates_per_batch = config.ppo_epochs * (config.batch_size // config.minibatch_size)
    total_updates = (config.total_episodes // config.batch_size) * updates_per_batch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        (lambda u: max(0.0, 1.0 - u / total_updates)) if config.lr_decay else (lambda u: 1.0),
    )
    kl_ctl: AdaptiveKLController | FixedKLController = (
        AdaptiveKLController(
            config.init_kl_coef, config.kl_target, config.horizon(), config.kl_hold_until_target
        )
        if config.adaptive_kl
        else FixedKLController(config.init_kl_coef)
    )
    device = model_device(policy.lm)
    bf16 = precision.bf16_enabled(config.mixed_precision, device)
    precision.enable_tf32()
    # One seed for every rank: sampling noise and minibatch permutations belong to the batch.
    generator = torch.Generator(device=device).manual_seed(config.seed * 7919)
    step, episodes_done, history = 0, 0, []
    checkpoint = latest_checkpoint(out_dir)
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, policy)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        kl_ctl.load_state_dict(state["kl_controller"])
        step, episodes_done, history = state["step"], state["episodes"], state["history"]
        restore_rng_state(state["rng"][0], generator)  # every rank's (older checkpoints too)
    model = distributed.data_parallel(policy)  # after the checkpoint: rank 0's copy wins
    target = config.total_episodes if episodes is None else episodes_done + episodes
    target = min(target, config.total_episodes)
    start_episodes = episodes_done

    def checkpoint_now() -> None:
        if distributed.is_main():
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "kl_controller": kl_ctl.state_dict(),
                "step": step,
                "episodes": episodes_done,
                "history": history,
                "rng": [rng_state(generator)],
                "base": base,
                "config": config.__dict__,
                "sampling": sampling.__dict__,
            }
            save_checkpoint(out_dir, step, policy, merged_copy(policy.lm), tokenizer, state)
        distributed.barrier()

    while episodes_done + config.batch_size <= target:
        started = time.perf_counter()
        # 2. Queries of this batch: a permutation keyed by (seed, step); rows shard over ranks.
        order = torch.randperm(
            len(query_pool), generator=torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        ).repeat(config.batch_size // len(query_pool) + 1)[: config.batch_size]
        # 3.-6. Rollout, scores, old and reference log-probs, advantages (rollout.py).
        batch = collect_rollout(
            policy,
            scorer,
            [query_pool[i] for i in order.tolist()],
            kl_ctl.value,
            config,
            sampling,
            rules,
            generator,
        )
        mask = batch.mask  # (B, R)
        rolled_out = _synchronized_clock(device)

        # 7. PPO epochs over minibatches of a permutation shared by the ranks; each rank takes
        #    its share of every minibatch, in micro-batches (gradient accumulation).
        totals = torch.zeros(len(LOSS_METRICS), dtype=torch.float64, device=device)
        for _ in range(config.ppo_epochs):
            permutation = torch.randperm(config.batch_size, generator=generator, device=device)
            for mb_start in range(0, config.batch_size, config.minibatch_size):
                minibatch = permutation[mb_start : mb_start + config.minibatch_size]
                # Losses are token means over the minibatch: a micro-batch's token mean weighs
                # its share of the tokens, however the minibatch is split or shared out.
                tokens = mask[minibatch].sum().clamp(min=1)
                micros = minibatch[rank::world].split(micro)
                for index, idx in enumerate(micros):
                    with distributed.gradient_sync(model, sync=index == len(micros) - 1):
                        with precision.autocast(device, bf16):
                            new_logits, new_values = model(
                                batch.query_ids[idx],
                                batch.query_mask[idx],
                                batch.response_ids[idx],
                                batch.keep[idx],
                                sampling.temperature,
                            )  # (m, R, V), (m, R)
                        new_logprobs = logprobs_from_logits(new_logits, batch.response_ids[idx])
                        pg_loss, pg_clip, approx_kl = ppo_policy_loss(
                            new_logprobs,
                            batch.old_logprobs[idx],
                            batch.advantages[idx],
                            mask[idx],
                            config.clip_range,
                        )
                        assert new_values is not None
                        vf_loss, vf_clip = ppo_value_loss(
                            new_values,
                            batch.old_values[idx],
                            batch.returns[idx],
                            mask[idx],
                            config.value_clip_range,
                        )
                        loss = pg_loss + config.vf_coef * vf_loss
                        share = mask[idx].sum() / tokens
                        (loss * share * world).backward()  # DDP averages over ranks: x world
                    with torch.no_grad():
                        entropy = masked_mean(entropy_from_logits(new_logits), mask[idx])
                        values = (pg_loss, vf_loss, pg_clip, vf_clip, approx_kl, entropy)
                        totals += torch.stack(values).to(totals) * mask[idx].sum()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        distributed.all_reduce_sum(totals)
        trained_tokens = float(
            config.ppo_epochs * config.batch_size * (batch.query_ids.shape[1] + mask.shape[1])
        )
        loss_sums = totals.tolist()
        trained = _synchronized_clock(device)

        # 8. KL controller update with the batch's mean KL (summed over tokens).
        n = float(config.batch_size)
        mean_kl = float(batch.kl.sum()) / n
        beta = kl_ctl.value
        kl_ctl.update(mean_kl, config.batch_size)
        step += 1
        episodes_done += config.batch_size
        metrics: dict[str, float] = {
            "step": float(step),
            "episodes": float(episodes_done),
            "score": float(batch.raw_scores.sum()) / n,
            "score_with_penalty": float(batch.scores.sum()) / n,
            "ended_fraction": float(batch.ended.float().sum()) / n,
            "response_length": float(mask.sum()) / n,
            "kl": mean_kl,
            "beta": beta,
            "lr": float(scheduler.get_last_lr()[0]),
            "seconds": time.perf_counter() - started,
            "rollout_seconds": rolled_out - started,
            "train_seconds": trained - rolled_out,
            "train_tokens": trained_tokens,
        }
        count = config.ppo_epochs * max(1.0, float(mask.sum()))  # token means, as the losses
        metrics.update({name: v / count for name, v in zip(LOSS_METRICS, loss_sums, strict=True)})
        history.append(metrics)
        if progress is not None:
            progress(episodes_done - start_episodes, target - start_episodes, metrics)
        if checkpoint_every and step % checkpoint_every == 0:
            checkpoint_now()
    if checkpoint is None or episodes_done > start_episodes:
        checkpoint_now()
    return history
