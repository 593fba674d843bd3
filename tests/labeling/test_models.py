"""Invariants the database holds for the labeling models."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from labeling.models import Comparison
from tests.factories import ComparisonFactory, TaskFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", [None, [True, False, True], [False, False, False]])
def test_sample_ended_is_null_or_one_flag_per_sample(value):
    comparison = ComparisonFactory(task=TaskFactory(k=3), sample_ended=value)
    comparison.full_clean()
    assert Comparison.objects.get(pk=comparison.pk).sample_ended == value


@pytest.mark.parametrize("value", [[True, True], [True] * 4, [], {"0": True}, True])
def test_sample_ended_of_another_length_is_refused(value):
    task = TaskFactory(k=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        ComparisonFactory(task=task, sample_ended=value)
    comparison = ComparisonFactory.build(task=task, prompt=ComparisonFactory(task=task).prompt)
    comparison.sample_ended = value
    with pytest.raises(ValidationError, match="comparison_sample_ended_k"):
        comparison.validate_constraints()
