"""Artifacts on disk, published atomically (worker side; imports torch).

They live under ``settings.ARTIFACTS_DIR / task-<id>``: ``reward/run-<run>/`` (a saved reward
model), ``ppo/from-v<n>/`` (PPO state continuing policy version n, with resumable
checkpoints), ``policy/run-<run>/`` (a published policy version: the final PPO checkpoint,
hard-linked, whose ``model/`` is a loadable LM). Every artifact is complete before the
database row that points at it is created.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from django.conf import settings

from training.ml import checkpoint as ml_checkpoint
from training.ml.models import atomic_directory
from training.models import PolicyVersion


def task_dir(task_id: int) -> Path:
    return Path(settings.ARTIFACTS_DIR) / f"task-{task_id}"


def run_work_dir(task_id: int, run_id: int) -> Path:
    """Where a run's body under torchrun keeps its spec, progress, result and log."""
    return task_dir(task_id) / "runs" / f"run-{run_id}"


def hardlink_copy(source: Path, final: Path) -> None:
    """Copy a directory tree by hard links (no extra disk), atomically into ``final``."""
    tmp, commit = atomic_directory(final)
    shutil.rmtree(tmp)
    try:
        shutil.copytree(source, tmp, copy_function=os.link)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
    commit()


def seed_ppo_state(state_dir: Path, head: PolicyVersion | None) -> None:
    """A PPO state directory continuing ``head``: its final checkpoint, hard-linked."""
    if ml_checkpoint.latest_checkpoint(state_dir) is not None:
        return  # resuming an interrupted chunk
    if head is None or not head.artifact_path:
        return  # fresh PPO from the base model
    source = Path(head.artifact_path)
    name = source.name if source.name.startswith("step-") else "step-00000000"
    state_dir.mkdir(parents=True, exist_ok=True)
    hardlink_copy(source, state_dir / ml_checkpoint.CHECKPOINTS / name)
    pointer = state_dir / f".{ml_checkpoint.LATEST}.tmp"
    pointer.write_text(name)
    os.replace(pointer, state_dir / ml_checkpoint.LATEST)


def checkpoint_state(checkpoint: Path) -> dict[str, Any]:
    """The training state saved with a PPO checkpoint (episodes, history, ...)."""
    return dict(torch.load(checkpoint / "state.pt", weights_only=False, map_location="cpu"))


def episodes_in(state_dir: Path) -> int:
    """PPO episodes done in a state directory (0 when it has no checkpoint yet)."""
    latest = ml_checkpoint.latest_checkpoint(state_dir)
    return 0 if latest is None else int(checkpoint_state(latest)["episodes"])


def publish_policy_checkpoint(checkpoint: Path, task_id: int, run_id: int) -> Path:
    """The final checkpoint of a PPO run as a policy artifact (hard links; idempotent)."""
    artifact = task_dir(task_id) / "policy" / f"run-{run_id}" / checkpoint.name
    if not artifact.is_dir():
        hardlink_copy(checkpoint, artifact)
    return artifact
