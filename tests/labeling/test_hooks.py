"""labeling.hooks: the signal after a label's commit and the settings validators that other
apps register."""

from __future__ import annotations

import logging

import pytest
from django.dispatch import Signal

from labeling import hooks
from labeling.models import Label


def test_a_failing_receiver_is_logged_and_the_others_still_run(monkeypatch, caplog):
    signal = Signal()
    received = []

    def broken(sender, task_id, **kwargs):
        raise RuntimeError("broker down")

    signal.connect(broken, weak=False)
    signal.connect(lambda sender, task_id, **kw: received.append(task_id), weak=False)
    monkeypatch.setattr(hooks, "label_committed", signal)
    with caplog.at_level(logging.ERROR, logger="labeling.hooks"):
        hooks.send_label_committed(sender=Label, task_id=7)  # does not raise
    assert received == [7]
    assert "broker down" in caplog.text


def test_registered_validators_decide_and_unknown_fields_pass(monkeypatch):
    monkeypatch.setattr(hooks, "_settings_validators", {})

    def positive(value):
        if value <= 0:
            raise ValueError("must be positive")

    hooks.register_settings_validator("x", positive)
    hooks.validate_setting("x", 3)
    with pytest.raises(ValueError, match="positive"):
        hooks.validate_setting("x", -1)
    hooks.validate_setting("y", object())  # nobody validates y
