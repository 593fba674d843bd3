"""The models a worker keeps loaded between jobs (imports torch through training.ml)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from labeling.models import Task
from training.ml.models import load_model, load_tokenizer
from training.ml.reward import load_reward_model
from training.models import PolicyVersion


def policy_model_path(task: Task, version: PolicyVersion | None) -> str:
    """What to load for a policy version: its published LM, or the task's base model."""
    if version is None or not version.artifact_path:
        return task.base_model
    return str(Path(version.artifact_path) / "model")


@lru_cache(maxsize=2)
def cached_model(path: str) -> tuple[Any, Any]:
    """(model, tokenizer) of ``path``, loaded once per process (the two most recent)."""
    return load_model(path), load_tokenizer(path)


@lru_cache(maxsize=1)
def cached_reward_model(path: str) -> tuple[Any, Any, dict[str, Any]]:
    """(reward model, tokenizer, metadata) of a reward-model version's artifact, loaded once
    per process (the latest: the sampler scores candidates with it)."""
    return load_reward_model(path)
