"""Training throughput on the embedded model (SmolLM2-135M), against the machine's float32
matrix-multiply rate measured in the same run.

    .venv/bin/python bench/train_throughput.py [--model embedded:smollm2-135m] [--threads N]

Figures: tokens/s for sampling (forward only: 2 x N x tokens), reward-model training and the
PPO update (forward + backward: 6 x N x tokens), N = non-embedding parameters; each also as
a fraction of the matmul rate (goal >= 0.5 for forward + backward). The reward-model step
runs the K-way batch with the shared prompt computed once; "label-equivalent tokens/s"
counts the K full sequences a pairwise trainer would process.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time

import torch

from training.ml.config import SamplingConfig
from training.ml.losses import kway_reward_loss, logprobs_from_logits
from training.ml.models import (
    EMBEDDED_DEFAULT,
    PolicyWithValue,
    RewardModel,
    load_model,
    load_tokenizer,
)
from training.ml.sampling import pad_left, pad_right, sample_responses


def matmul_rate(size: int = 1024, seconds: float = 3.0) -> float:
    """Float32 FLOP/s of a square matmul (best of repeated timings)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * size**3 / (time.perf_counter() - start))
    return best


def non_embedding_parameters(model: torch.nn.Module) -> int:
    embeddings = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
    }
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=EMBEDDED_DEFAULT)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--queries", type=int, default=8, help="queries per batch")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--query-length", type=int, default=64)
    parser.add_argument("--response-length", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = load_tokenizer(args.model)
    lm = load_model(args.model)
    n_params = non_embedding_parameters(lm)
    q, k, tq, r = args.queries, args.k, args.query_length, args.response_length
    vocab = len(tokenizer)
    query_ids, query_mask = pad_left(torch.randint(100, vocab, (q, tq)).tolist(), 0)
    response_ids, response_mask = pad_right(torch.randint(100, vocab, (q * k, r)).tolist(), 0)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"model: {args.model}, non-embedding params N = {n_params / 1e6:.1f}M")
    print(f"batch: {q} queries x K={k}, query {tq} tokens, response {r} tokens")
    print(f"{'phase':30s} {'tokens/s':>9s} {'matmul GFLOP/s':>15s} {'fraction':>9s}")

    def phase(name: str, step, tokens: int, flops: float) -> None:
        """Time ``step``; the matmul rate is measured right before (the box may be shared)."""
        rate = matmul_rate()
        seconds = timed(step, args.repeats)
        print(
            f"{name:30s} {tokens / seconds:9.0f} {rate / 1e9:15.1f} {flops / seconds / rate:9.2f}"
        )

    # Sampling: K responses per query from one prompt pass (no truncation: full length).
    sampling = SamplingConfig(
        k=k,
        query_length=tq,
        response_length=r,
        truncate_token=None,
        truncate_after=0,
        batch_size=q,
        temperature=0.7,
    )
    queries = query_ids.tolist()
    generated = q * k * r
    phase(
        "sampling (generated tokens)",
        lambda: sample_responses(
            lm, tokenizer, queries, sampling, generator=torch.Generator().manual_seed(0)
        ),
        generated,
        2 * n_params * (q * tq + generated),  # forward only
    )

    # Reward model: K-way loss, prompt once + K responses on its cache, forward + backward.
    reward_model = RewardModel(lm)
    best = torch.zeros(q, dtype=torch.long)

    def reward_step() -> None:
        rewards = reward_model.raw_rewards(query_ids, query_mask, response_ids, response_mask)
        kway_reward_loss(rewards.view(q, k), best).backward()
        reward_model.zero_grad(set_to_none=True)

    tokens = q * tq + q * k * r
    phase("reward model fwd+bwd", reward_step, tokens, 6 * n_params * tokens)
    print(
        f"  (a pairwise trainer would process {q * (k - 1) * 2 * (tq + r)} tokens for these "
        f"{q} labels; K full sequences: {q * k * (tq + r)}; here: {tokens})"
    )

    # PPO update: policy + value head over (query, response), forward + backward.
    policy = PolicyWithValue(lm, reference=copy.deepcopy(lm))  # lm stays trainable
    ppo_queries, ppo_mask = query_ids.repeat_interleave(k, 0), query_mask.repeat_interleave(k, 0)

    def ppo_step() -> None:
        logits, values = policy.logits_and_values(
            ppo_queries, ppo_mask, response_ids, response_mask, 0.7
        )
        loss = -logprobs_from_logits(logits, response_ids).mean() + values.pow(2).mean()
        loss.backward()
        policy.zero_grad(set_to_none=True)

    tokens = q * k * (tq + r)
    phase("PPO update fwd+bwd", ppo_step, tokens, 6 * n_params * tokens)


if __name__ == "__main__":
    main()
