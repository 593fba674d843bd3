"""A task's training settings: what the admin validates and what the worker trains with."""

from __future__ import annotations

import pytest

from tests.factories import TaskFactory
from training.ml.presets import preset
from training.task_settings import DEFAULT_PRESET, config_from_task_fields, training_config

pytestmark = pytest.mark.django_db


def test_the_tasks_generation_fields_override_its_settings():
    task = TaskFactory(
        k=3,
        response_length=12,
        truncation_token="",
        truncation_min_position=5,
        training_settings={"preset": "cpu-tiny", "sampling": {"k": 9, "batch_size": 2}},
    )
    config = training_config(task)
    assert (config.sampling.k, config.sampling.response_length) == (3, 12)
    assert (config.sampling.truncate_token, config.sampling.truncate_after) == (None, 5)
    assert config.sampling.batch_size == 2  # from the settings
    assert config.ppo == preset("cpu-tiny").ppo


def test_without_a_preset_the_worker_builds_on_the_default_one():
    config = training_config(TaskFactory(training_settings={}))
    assert config.reward == preset(DEFAULT_PRESET).reward


def test_field_values_give_the_same_config_as_the_task():
    task = TaskFactory(training_settings={"preset": "cpu-small", "ppo": {"ppo_epochs": 3}})
    fields = {name: getattr(task, name) for name in vars(task)}
    assert config_from_task_fields(fields) == training_config(task)
