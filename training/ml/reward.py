"""Reward model: training on best-of-K labels, normalization, saving, scoring.

Label handling: a record whose ``best`` is an index in [0, K) is a K-way label. ``best``
null, negative or missing (skip / "none acceptable") carries no ranking among the K, so
it is left out of the K-way loss and counted in ``metrics["labels_skipped"]``.
Each retrain starts from the pretrained LM (``init_from`` warm-starts from a previous reward
model instead) and makes ``epochs`` passes (default one) with linearly decayed LR. A caller
that warm-starts passes the labels new since the previous model plus a bounded replay of older
ones (:func:`bounded_replay`), so early labels are not revisited at every retrain. Batches hold
one K each (labels from before and after an edit of a task's K never share a batch).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase

from . import distributed, precision
from .config import RewardConfig, SamplingConfig
from .labels import Example, LabelRecord, batches_by_k, collate, encode_label
from .losses import (
    bootstrap_weights,
    ensemble_kway_loss,
    kway_accuracy,
    kway_reward_loss,
    normalization_gain_bias,
)
from .models import (
    RewardModel,
    ScalarHead,
    add_lora,
    atomic_directory,
    causal_lm,
    freeze_lower_layers,
    hidden_size,
    load_model,
    load_tokenizer,
    merged_copy,
)
from .sampling import pad_left, pad_right, sample_responses

ProgressCallback = Callable[[int, int], None]
HEAD_FILE, META_FILE, LM_DIR = "reward_head.safetensors", "reward.json", "model"


@dataclass
class RewardTrainResult:
    out_dir: Path
    gain: float
    bias: float
    metrics: dict[str, float] = field(default_factory=dict)
    model: RewardModel | None = field(default=None, repr=False)
    """The trained reward model, in memory (LoRA merged, gain/bias set)."""


def _kway_rewards(
    model: RewardModel, batch: tuple[Tensor, ...], wrapped: nn.Module | None = None
) -> Tensor:
    """Each member's rewards (B, K, E) of a collated batch, through ``wrapped`` (the model in
    DDP) if given."""
    device = model.device
    query_ids, query_mask, response_ids, response_mask = (t.to(device) for t in batch[:4])
    raw = (wrapped or model)(query_ids, query_mask, response_ids, response_mask)  # (B*K, E)
    return raw.view(query_ids.shape[0], -1, raw.shape[-1])  # (B, K, E)


def _build_reward_model(
    base: str, init_from: str | Path | None, config: RewardConfig
) -> RewardModel:
    if init_from is not None:
        model, _, _ = load_reward_model(init_from)
        if model.head.size != config.ensemble_members:  # the ensemble was resized: new heads
            torch.manual_seed(config.seed)
            model.head = ScalarHead(hidden_size(model.lm), members=config.ensemble_members)
            model.head.to(model.device)
    else:
        torch.manual_seed(config.seed)
        model = RewardModel(load_model(base), members=config.ensemble_members)
    if config.trainable_layers:
        freeze_lower_layers(model.lm, config.trainable_layers)
    if config.lora_rank:
        model.lm = add_lora(model.lm, config.lora_rank, config.lora_alpha)
        for parameter in model.head.parameters():
            parameter.requires_grad_(True)
    lm = causal_lm(model.lm)
    output, embeddings = lm.get_output_embeddings(), lm.get_input_embeddings()
    if output is not None and output.weight is not embeddings.weight:
        # The head reads hidden states: an untied LM head would get no gradient (DDP wants
        # a gradient for every trainable parameter).
        output.requires_grad_(False)
    return model


@torch.no_grad()
def evaluate(
    model: RewardModel, examples: Sequence[Example], pad_id: int, batch_size: int = 8
) -> dict[str, float]:
    """K-way loss and accuracy (chosen response has the highest reward)."""
    if not examples:
        return {}
    loss = accuracy = 0.0
    for chunk in batches_by_k(examples, batch_size):
        batch = collate(chunk, pad_id)
        rewards = _kway_rewards(model, batch).mean(-1)  # (B, K)
        n = rewards.shape[0]
        best = batch[-1].to(rewards.device)
        loss += kway_reward_loss(rewards, best).item() * n
        accuracy += kway_accuracy(rewards, best).item() * n
    return {"loss": loss / len(examples), "accuracy": accuracy / len(examples)}


def evaluate_reward_model(
    directory: str | Path,
    labels: Sequence[LabelRecord | dict[str, Any]],
    sampling: SamplingConfig | None = None,
) -> dict[str, float]:
    """K-way accuracy and loss of a saved reward model on labels (e.g. those that arrived after
    it was trained: its prospective accuracy); skips and "none acceptable" are left out.
    Returns {"labels": n, "accuracy": ..., "loss": ...} ({"labels": 0} without usable labels)."""
    records = [r if isinstance(r, LabelRecord) else LabelRecord.from_dict(r) for r in labels]
    usable = [r for r in records if r.best is not None]
    if not usable:
        return {"labels": 0.0}
    model, tokenizer, _ = load_reward_model(directory)
    examples = [encode_label(r, tokenizer, sampling or SamplingConfig()) for r in usable]
    return {"labels": float(len(examples)), **evaluate(model, examples, _pad_id(tokenizer))}


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return int(tokenizer.pad_token_id or 0)


def train_reward_model(
    labels: Sequence[LabelRecord | dict[str, Any]],
    base: str,
    out_dir: str | Path,
    config: RewardConfig | None = None,
    sampling: SamplingConfig | None = None,
    normalization_queries: Sequence[str] | None = None,
    init_from: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> RewardTrainResult:
    """Train on best-of-K labels, set gain/bias, save into ``out_dir`` (atomically).

    Normalization uses ``config.normalization_samples`` responses sampled from ``base`` for
    ``normalization_queries``; without queries, the labels' own responses (samples of the
    policy that produced them) stand in. Data-parallel when a process group is initialized.
    """
    config = config or RewardConfig()
    sampling = sampling or SamplingConfig()
    config.validate()
    started = time.perf_counter()
    records = [r if isinstance(r, LabelRecord) else LabelRecord.from_dict(r) for r in labels]
    usable = [r for r in records if r.best is not None]
    tokenizer = load_tokenizer(base if init_from is None else str(Path(init_from) / LM_DIR))
    pad_id = int(tokenizer.pad_token_id or 0)
    examples = [encode_label(r, tokenizer, sampling) for r in usable]
    random.Random(config.seed).shuffle(examples)
    n_holdout = int(len(examples) * config.holdout_fraction)
    holdout, train = examples[:n_holdout], examples[n_holdout:]
    if not train:
        raise ValueError("no usable labels to train on")
    model = _build_reward_model(base, init_from, config)
    bf16 = precision.bf16_enabled(config.mixed_precision, model.device)
    precision.enable_tf32()
    wrapped = distributed.data_parallel(model)
    world = distributed.world_size()
    parameters = [p for p in model.parameters() if p.requires_grad]
    epochs = [batches_by_k(train, config.batch_size, config.seed + e) for e in range(config.epochs)]
    total_steps = sum(len(batches) for batches in epochs)
    optimizer = torch.optim.AdamW(
        parameters, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / total_steps)
    seen = torch.zeros(3, dtype=torch.float64, device=model.device)  # loss, accuracy, tokens
    step, loop_started = 0, time.perf_counter()
    for batches in epochs:
        for batch_examples in batches:
            mine = distributed.shard(batch_examples)
            size = config.micro_batch_size
            micros = [mine[start : start + size] for start in range(0, len(mine), size)]
            # A rank whose shard of a short last batch is empty still joins DDP's gradient
            # average, with a pass that weighs nothing.
            for index, micro in enumerate(micros or [batch_examples[:1]]):
                with distributed.gradient_sync(wrapped, sync=index == max(0, len(micros) - 1)):
                    batch = collate(micro, pad_id)
                    with precision.autocast(model.device, bf16):
                        members = _kway_rewards(model, batch, wrapped).float()  # (b, K, E)
                    best = batch[-1].to(members.device)
                    keys = [e.key for e in micro]
                    weights = bootstrap_weights(keys, members.shape[-1], config.seed)
                    loss = ensemble_kway_loss(members, best, weights.to(members.device))
                    rewards = members.detach().mean(-1)  # (b, K)
                    weight = len(micro) if micros else 0  # DDP averages over ranks: x world
                    (loss * weight * world / len(batch_examples)).backward()
                if micros:
                    accuracy = kway_accuracy(rewards, best)
                    seen[:2] += torch.stack([loss.detach(), accuracy]).to(seen) * len(micro)
                    seen[2] += float(batch[1].sum() + batch[3].sum())  # CPU tensors: no sync
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if progress is not None:
                progress(step, total_steps)
    distributed.all_reduce_sum(seen)
    loss_sum, accuracy_sum, tokens = seen.tolist()  # waits for the GPU
    loop_seconds = time.perf_counter() - loop_started
    train_seconds = time.perf_counter() - started
    del wrapped
    model.lm = merged_copy(model.lm)
    with precision.autocast(model.device, bf16):  # as PPO scores with it
        gain, bias = _normalize(
            model, tokenizer, examples, sampling, config, base, normalization_queries
        )
    model.gain.fill_(gain)
    model.bias.fill_(bias)
    trained = len(train) * config.epochs
    metrics = {
        "labels_total": float(len(records)),
        "labels_skipped": float(len(records) - len(usable)),
        "labels_train": float(len(train)),
        "labels_holdout": float(len(holdout)),
        "train_loss": loss_sum / trained,
        "train_accuracy": accuracy_sum / trained,
        "train_seconds": train_seconds,
        "labels_per_second": trained / train_seconds,
        "tokens_per_second": tokens / train_seconds,
        "tokens": tokens,
        "loop_seconds": loop_seconds,
        "seconds": time.perf_counter() - started,
        "processes": float(world),
        "bf16": float(bf16),
    }
    metrics.update({f"holdout_{k}": v for k, v in evaluate(model, holdout, pad_id).items()})
    out = Path(out_dir)
    if distributed.is_main():
        save_reward_model(
            model, tokenizer, out, {"base": base, "metrics": metrics, "config": config.__dict__}
        )
    distributed.barrier()
    return RewardTrainResult(out, gain, bias, metrics, model)


@torch.no_grad()
def _normalize(
    model: RewardModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    sampling: SamplingConfig,
    config: RewardConfig,
    base: str,
    normalization_queries: Sequence[str] | None,
) -> tuple[float, float]:
    n = config.normalization_samples
    if normalization_queries:
        policy = load_model(base)
        count = math.ceil(n / sampling.k)
        queries = [normalization_queries[i % len(normalization_queries)] for i in range(count)]
        generator = torch.Generator().manual_seed(config.seed)
        samples = sample_responses(policy, tokenizer, queries, sampling, generator=generator)
        pairs = [(s.query_token_ids, r) for s in samples for r in s.response_token_ids]
    else:
        pairs = [(e.query_ids, r) for e in examples for r in e.response_ids]
    pairs = pairs[:n]
    raw = score_token_ids(
        model,
        [q for q, _ in pairs],
        [r for _, r in pairs],
        pad_id=int(tokenizer.pad_token_id or 0),
        normalized=False,
    )
    return normalization_gain_bias(raw)


@torch.no_grad()
def score_token_ids(
    model: RewardModel,
    query_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    pad_id: int = 0,
    batch_size: int = 16,
    normalized: bool = True,
    members: bool = False,
) -> Tensor:
    """Reward of each (query, response) pair of token ids: (N,); with ``members``, each ensemble
    member's raw reward (N, E)."""
    scores = []
    for start in range(0, len(query_ids), batch_size):
        queries, queries_mask = pad_left(query_ids[start : start + batch_size], pad_id)
        responses, responses_mask = pad_right(response_ids[start : start + batch_size], pad_id)
        device = model.device
        each = model.member_rewards(
            queries.to(device),
            queries_mask.to(device),
            responses.to(device),
            responses_mask.to(device),
        )  # (b, E)
        if members:
            scores.append(each.cpu())
            continue
        raw = each.mean(-1)
        scores.append((model.normalize(raw) if normalized else raw).cpu())
    return torch.cat(scores) if scores else torch.zeros(0)


def score_responses(
    reward: str | Path | RewardModel,
    queries: Sequence[str | Sequence[int]],
    responses: Sequence[str | Sequence[int]],
    sampling: SamplingConfig | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> list[float]:
    """Normalized rewards of (query, response) pairs, given as text or token ids."""
    sampling = sampling or SamplingConfig()
    if isinstance(reward, RewardModel):
        model = reward
        if tokenizer is None:
            raise ValueError("pass the tokenizer with an in-memory reward model")
    else:
        model, tokenizer, _ = load_reward_model(reward)

    def ids(items: Sequence[str | Sequence[int]], query: bool) -> list[list[int]]:
        out = []
        for item in items:
            if isinstance(item, str):
                encoded = tokenizer(item, add_special_tokens=False)["input_ids"]
                item = encoded[-sampling.query_length :] if query else encoded
            out.append(list(item))
        return out

    return score_token_ids(
        model, ids(queries, True), ids(responses, False), int(tokenizer.pad_token_id or 0)
    ).tolist()


def save_reward_model(
    model: RewardModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path, meta: dict[str, Any]
) -> None:
    """``model/`` (LM + tokenizer), ``reward_head.safetensors``, ``reward.json`` (gain, bias)."""
    tmp, commit = atomic_directory(Path(out_dir))
    merged_copy(model.lm).save_pretrained(tmp / LM_DIR, safe_serialization=True)
    tokenizer.save_pretrained(tmp / LM_DIR)
    save_file({k: v.contiguous() for k, v in model.head.state_dict().items()}, tmp / HEAD_FILE)
    meta = {**meta, "gain": float(model.gain), "bias": float(model.bias)}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    commit()


def load_reward_model(
    directory: str | Path,
) -> tuple[RewardModel, PreTrainedTokenizerBase, dict[str, Any]]:
    directory = Path(directory)
    meta = json.loads((directory / META_FILE).read_text())
    head = load_file(directory / HEAD_FILE)
    model = RewardModel(load_model(str(directory / LM_DIR)), members=head["linear.weight"].shape[0])
    model.head.load_state_dict(head)
    model.gain.fill_(meta["gain"])
    model.bias.fill_(meta["bias"])
    model.eval()
    return model, load_tokenizer(str(directory / LM_DIR)), meta
