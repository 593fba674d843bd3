"""A task's training settings (its ``training_settings`` and ``schedule`` JSON): validation
for the admin form and the worker's resolved configuration. Torch-free.

``training_settings`` is ``{"preset"?: name, "sampling"?: {...}, "reward"?: {...},
"ppo"?: {...}}``, checked by the :mod:`training.ml.config` dataclasses; ``schedule`` by
:class:`training.schedule.Schedule`.
"""

from __future__ import annotations

from typing import Any

from labeling.models import Task
from training.ml.config import PRESETS, TrainingConfig
from training.schedule import Schedule

DEFAULT_PRESET = "cpu-small"
"""The preset a task's training settings build on when they name none (worker side)."""


def _split_preset(data: Any) -> tuple[str | None, dict[str, Any]]:
    """(preset name or None, the other keys); ValueError unless an object with a known preset."""
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object")
    rest = dict(data)
    base = rest.pop("preset", None)
    if base is not None and base not in PRESETS:
        raise ValueError(f"preset: unknown preset {base!r} (known: {', '.join(PRESETS)})")
    return base, rest


def validate_training_settings(data: Any) -> None:
    """Raise ValueError unless ``data`` is a valid training-settings object."""
    base, rest = _split_preset(data)
    TrainingConfig.from_dict(rest, base=base)


def validate_schedule(data: Any) -> None:
    """Raise ValueError unless ``data`` is a valid online schedule."""
    Schedule.from_dict(data)


def training_config(task: Task) -> TrainingConfig:
    """The task's training settings over their preset, with the task's own generation
    fields (K, lengths, temperature, truncation) taking precedence."""
    base, data = _split_preset(task.training_settings or {})
    sampling = dict(data.get("sampling") or {})
    sampling.update(
        k=task.k,
        query_length=task.query_length,
        response_length=task.response_length,
        temperature=task.temperature,
        truncate_token=task.truncation_token or None,
        truncate_after=task.truncation_min_position,
    )
    data["sampling"] = sampling
    return TrainingConfig.from_dict(data, base=base or DEFAULT_PRESET)
