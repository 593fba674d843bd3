"""Where other apps plug into labeling, so that labeling imports none of them.

- ``label_committed``: a signal sent after the transaction that stored a new label commits,
  with ``task_id``. The training loop connects its scheduler tick to it
  (``training.apps.TrainingConfig.ready``). Receivers run in the labeler's request: they must
  be quick, and an exception in one is logged, never raised (the label is already stored).
- settings validators: a task's ``training_settings`` and ``schedule`` are JSON that the app
  that reads them validates. It registers a validator per field with
  :func:`register_settings_validator`; the task form calls :func:`validate_setting`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

label_committed = Signal()
"""Sent (``sender`` is the Label model) with ``task_id`` after a new label's commit."""

SettingsValidator = Callable[[Any], None]
_settings_validators: dict[str, SettingsValidator] = {}


def send_label_committed(*, sender: type, task_id: int) -> None:
    """Notify the receivers of ``label_committed``; their errors are logged, not raised."""
    for receiver, result in label_committed.send_robust(sender=sender, task_id=task_id):
        if isinstance(result, Exception):
            logger.error(
                "label_committed receiver %r failed for task %s",
                receiver,
                task_id,
                exc_info=(type(result), result, result.__traceback__),
            )


def register_settings_validator(field: str, validator: SettingsValidator) -> None:
    """Validate the task's JSON field ``field`` with ``validator`` (raises ValueError)."""
    _settings_validators[field] = validator


def validate_setting(field: str, value: Any) -> None:
    """Raise ValueError when the registered validator of ``field`` refuses ``value`` (a field
    without a validator accepts anything)."""
    validator = _settings_validators.get(field)
    if validator is not None:
        validator(value)


TokenizerLocator = Callable[[str], Path]
"""base model -> its ``tokenizer.json``; raises LookupError saying why there is none. It must
not import torch (it runs in the web process)."""
_tokenizer_locators: list[TokenizerLocator] = []


def register_tokenizer_locator(locator: TokenizerLocator) -> None:
    if locator not in _tokenizer_locators:
        _tokenizer_locators.append(locator)


def tokenizer_file(base_model: str) -> Path:
    """The ``tokenizer.json`` of ``base_model``; LookupError (with the reason) when no
    registered locator has one."""
    reasons = []
    for locator in _tokenizer_locators:
        try:
            return locator(base_model)
        except LookupError as exc:
            reasons.append(str(exc))
    raise LookupError("; ".join(reasons) or "no tokenizer locator is registered")
