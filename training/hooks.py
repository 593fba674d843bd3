"""What the training loop hears from labeling, through labeling's hooks (no import the other
way): a committed label ticks the task's scheduler, the task form validates the JSON
settings that training reads, and imports find a base model's tokenizer. ``connect()`` runs
once, from ``TrainingConfig.ready``."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from django.core.cache import cache

from labeling import hooks as labeling_hooks
from training import task_settings, tokenizer_files
from training.tasks import tick

logger = logging.getLogger(__name__)


def tick_countdown(*, task_id: int) -> float | None:
    """Debounce of the loop's tick after labels: when to enqueue one for this label, or None.

    Within each window of ``LABELING_TICK_DEBOUNCE_SECONDS`` per task, the first label enqueues
    a tick at once (leading edge) and the next one a tick delayed by the window (trailing edge,
    so the labels that follow are seen too); the rest enqueue nothing. Costs one or two cache
    ``add`` calls instead of a broker publish per label. 0 disables the debounce.
    """
    window = float(getattr(settings, "LABELING_TICK_DEBOUNCE_SECONDS", 2.0))
    if window <= 0:
        return 0.0
    timeout = max(1, math.ceil(window))
    if cache.add(f"labeling:tick:{task_id}", 1, timeout):
        return 0.0
    if cache.add(f"labeling:tick-trailing:{task_id}", 1, timeout):
        return window
    return None


def tick_after_label(sender: Any, *, task_id: int, **kwargs: Any) -> None:
    """Receiver of ``labeling.hooks.label_committed``: enqueue the task's scheduler tick,
    debounced by ``tick_countdown``. A broker outage must not fail the labeler's request:
    the beat's next ``tick_all`` catches up."""
    countdown = tick_countdown(task_id=task_id)
    if countdown is None:
        return
    try:
        if countdown:
            tick.apply_async((task_id,), countdown=countdown)
        else:
            tick.delay(task_id)
    except Exception:
        logger.exception("could not enqueue the loop tick of task %s", task_id)


def connect() -> None:
    labeling_hooks.label_committed.connect(tick_after_label, dispatch_uid="training.tick")
    labeling_hooks.register_settings_validator(
        "training_settings", task_settings.validate_training_settings
    )
    labeling_hooks.register_settings_validator("schedule", task_settings.validate_schedule)
    labeling_hooks.register_tokenizer_locator(tokenizer_files.tokenizer_json)
