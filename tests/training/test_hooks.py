"""What training registers in labeling's hooks: the tick after a label, the settings
validators."""

from __future__ import annotations

import pytest

from labeling import hooks as labeling_hooks
from labeling.models import Label
from labeling.services.tasks import task_settings_errors
from training import hooks


@pytest.fixture
def enqueued(monkeypatch, settings):
    calls = []
    monkeypatch.setattr(hooks.tick, "delay", lambda task_id: calls.append((task_id, 0)))
    monkeypatch.setattr(
        hooks.tick, "apply_async", lambda args, countdown: calls.append((args[0], countdown))
    )
    settings.LABELING_TICK_DEBOUNCE_SECONDS = 0
    return calls


def test_a_committed_label_enqueues_the_tasks_tick(enqueued):
    labeling_hooks.send_label_committed(sender=Label, task_id=42)
    assert enqueued == [(42, 0)]


def test_a_broker_outage_does_not_reach_the_labeler(monkeypatch, settings):
    def down(task_id):
        raise ConnectionError("no broker")

    monkeypatch.setattr(hooks.tick, "delay", down)
    settings.LABELING_TICK_DEBOUNCE_SECONDS = 0
    hooks.tick_after_label(Label, task_id=1)  # logged, not raised


def test_tick_is_debounced_per_task(settings):
    from django.core.cache import cache

    cache.clear()
    settings.LABELING_TICK_DEBOUNCE_SECONDS = 2.0
    assert hooks.tick_countdown(task_id=1) == 0.0  # leading edge: at once
    assert hooks.tick_countdown(task_id=1) == 2.0  # trailing edge: after the window
    assert hooks.tick_countdown(task_id=1) is None
    assert hooks.tick_countdown(task_id=2) == 0.0
    settings.LABELING_TICK_DEBOUNCE_SECONDS = 0
    assert hooks.tick_countdown(task_id=1) == 0.0
    cache.clear()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("training_settings", {"preset": "huge"}, "unknown preset 'huge'"),
        ("training_settings", {"ppo": {"clip": "x"}}, "ppo.clip"),
        ("training_settings", [], "must be a JSON object"),
        ("schedule", {"n0": 0}, "schedule.n0"),
        ("schedule", {"bogus": 1}, "schedule.bogus"),
    ],
)
def test_the_task_form_validates_training_json_through_the_hook(field, value, message):
    errors = task_settings_errors({field: value})
    assert message in errors[field]


def test_valid_training_json_passes():
    settings = {"preset": "cpu-tiny", "ppo": {"learning_rate": 1e-4}}
    assert task_settings_errors({"training_settings": settings, "schedule": {"n0": 8}}) == {}
