"""Task configuration: settings validation, versioned instructions, membership, gold labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling import hooks, selectors
from labeling.locks import locked
from labeling.models import MAX_K, Comparison, InstructionsVersion, Task, TaskLabeler
from labeling.summaries import check_template

MAX_QUERY_LENGTH = 4096
MAX_RESPONSE_LENGTH = 2048
LEASE_SECONDS_RANGE = (30, 7 * 24 * 3600)


def task_settings_errors(values: Mapping[str, Any]) -> dict[str, str]:
    """Field -> message for every invalid task setting among ``values`` (pure, no DB)."""
    errors: dict[str, str] = {}

    def check(name: str, ok: bool, message: str) -> None:
        if name in values and values[name] is not None and name not in errors and not ok:
            errors[name] = message

    v = values.get
    check("k", 2 <= (v("k") or 0) <= MAX_K, f"K must be between 2 and {MAX_K}.")
    check(
        "query_length",
        1 <= (v("query_length") or 0) <= MAX_QUERY_LENGTH,
        f"Query length must be between 1 and {MAX_QUERY_LENGTH} tokens.",
    )
    check(
        "response_length",
        1 <= (v("response_length") or 0) <= MAX_RESPONSE_LENGTH,
        f"Response length must be between 1 and {MAX_RESPONSE_LENGTH} tokens.",
    )
    check("temperature", (v("temperature") or 0) > 0, "Temperature must be greater than 0.")
    if v("response_length") and "response_length" not in errors:
        check(
            "truncation_min_position",
            0 <= int(v("truncation_min_position") or 0) < int(v("response_length") or 0),
            "The truncation minimum position must be less than the response length.",
        )
    check(
        "labels_per_comparison",
        (v("labels_per_comparison") or 0) >= 1,
        "Overlap (labels per comparison) must be at least 1.",
    )
    check("gold_rate", 0 <= (v("gold_rate") or 0) <= 1, "Gold rate must be between 0 and 1.")
    check(
        "uniform_share",
        0 <= (v("uniform_share") or 0) <= 1,
        "The uniform share must be between 0 and 1.",
    )
    check("label_budget", (v("label_budget") or 0) >= 1, "The label budget must be at least 1.")
    low, high = LEASE_SECONDS_RANGE
    check(
        "lease_seconds",
        low <= (v("lease_seconds") or 0) <= high,
        f"Lease seconds must be between {low} and {high}.",
    )
    check(
        "agreement_threshold",
        0 <= (v("agreement_threshold") or 0) <= 1,
        "The agreement threshold must be between 0 and 1.",
    )
    if v("query_template") is not None:
        try:
            check_template(str(v("query_template")))
        except ValueError as error:
            errors["query_template"] = f"{str(error).capitalize()}."
    for name in ("training_settings", "schedule"):  # validated by the app that reads them
        if name in values and values[name] is not None:
            try:
                hooks.validate_setting(name, values[name])
            except ValueError as error:
                errors[name] = f"Invalid {name.replace('_', ' ')}: {error}"
    return errors


# The task settings that task_settings_errors checks.
VALIDATED_SETTINGS = (
    "k",
    "query_length",
    "response_length",
    "temperature",
    "truncation_min_position",
    "labels_per_comparison",
    "gold_rate",
    "uniform_share",
    "label_budget",
    "lease_seconds",
    "agreement_threshold",
    "query_template",
    "training_settings",
    "schedule",
)


@transaction.atomic
def set_instructions(*, task: Task, text: str) -> InstructionsVersion | None:
    """Create a new instructions version when ``text`` differs from the current one.

    Old versions are never edited (labels point at the version their labeler saw).
    Returns the new version, or None when nothing changed.
    """
    text = text.replace("\r\n", "\n").strip()
    locked(Task.objects.filter(pk=task.pk)).first()  # serialize version numbers
    current = selectors.current_instructions(task_id=task.pk)
    if current is not None and current.text == text:
        return None
    if current is None and not text:
        return None
    return InstructionsVersion.objects.create(
        task=task, version=(current.version + 1) if current else 1, text=text
    )


@transaction.atomic
def add_labeler(*, task: Task, labeler: User) -> TaskLabeler:
    membership, _ = TaskLabeler.objects.get_or_create(task=task, labeler=labeler)
    return membership


@transaction.atomic
def set_gold_choice(*, comparison: Comparison, choice: int | None) -> Comparison:
    """Record the researchers' best sample (``None`` removes the comparison from gold)."""
    comparison = Comparison.objects.select_for_update().get(pk=comparison.pk)
    if choice is not None and not 0 <= choice < comparison.k:
        raise ValidationError({"gold_choice": f"Choose a sample between 1 and {comparison.k}."})
    comparison.gold_choice = choice
    comparison.is_gold = choice is not None
    comparison.save(update_fields=["gold_choice", "is_gold"])
    return comparison
