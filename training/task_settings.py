"""A task's training settings (its ``training_settings`` and ``schedule`` JSON): validation
for the admin form and the worker's resolved configuration. Torch-free and Django-free.

``training_settings`` is ``{"preset"?: name, "sampling"?: {...}, "reward"?: {...},
"ppo"?: {...}}``, checked by the :mod:`training.ml.config` dataclasses; ``schedule`` by
:class:`training.schedule.Schedule`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from training.ml.config import TrainingConfig
from training.ml.presets import PRESETS
from training.schedule import Schedule

if TYPE_CHECKING:  # importable without Django (the demo's make_comparisons script)
    from labeling.models import Task

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


TASK_FIELDS = (
    "training_settings",
    "k",
    "query_length",
    "response_length",
    "temperature",
    "truncation_token",
    "truncation_min_position",
    "selection_strategy",
    "uniform_share",
)
"""The task fields a training configuration is built from."""
SELECTION_FIELDS = {"selection_strategy": "strategy", "uniform_share": "uniform_share"}
"""Task field -> ``selection`` setting it overrides."""


def training_config(task: Task) -> TrainingConfig:
    """The task's training settings over their preset, with the task's own generation
    fields (K, lengths, temperature, truncation) and selection fields (strategy, uniform
    share) taking precedence."""
    return config_from_task_fields({name: getattr(task, name) for name in TASK_FIELDS})


def config_from_task_fields(fields: Mapping[str, Any]) -> TrainingConfig:
    """``training_config`` from the task's field values by name (a task not in the database,
    e.g. the demo's settings in a script without Django)."""
    base, data = _split_preset(fields.get("training_settings") or {})
    sampling = dict(data.get("sampling") or {})
    sampling.update(
        k=fields["k"],
        query_length=fields["query_length"],
        response_length=fields["response_length"],
        temperature=fields["temperature"],
        truncate_token=fields["truncation_token"] or None,
        truncate_after=fields["truncation_min_position"],
    )
    data["sampling"] = sampling
    selection = dict(data.get("selection") or {})
    selection.update({k: fields[name] for name, k in SELECTION_FIELDS.items() if name in fields})
    data["selection"] = selection
    return TrainingConfig.from_dict(data, base=base or DEFAULT_PRESET)
