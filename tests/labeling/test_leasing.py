"""lease_next and reclaim_expired_leases: overlap, exclusion, expiry, gold, priority."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling import selectors
from labeling.models import Assignment, Comparison, Task
from labeling.services.labels import NoLiveLease, submit_label
from labeling.services.leasing import TaskNotActive, lease_next, reclaim_expired_leases
from tests.factories import ComparisonFactory, TaskFactory, TaskLabelerFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hot_path")]


def test_the_lease_read_back_matches_the_stored_row():
    task = make_task(k=4)
    ComparisonFactory.create_batch(3, task=task, k=4)
    user = member(task)
    first = lease_next(task=task, labeler=user)
    again = lease_next(task=task, labeler=user)
    stored = Assignment.objects.select_related("comparison__prompt").get(pk=first.pk)
    for lease in (first, again):
        assert lease.pk == stored.pk
        assert lease.comparison_id == stored.comparison_id
        assert lease.permutation == stored.permutation
        assert lease.expires_at == stored.expires_at
        assert lease.comparison.samples == stored.comparison.samples
        assert lease.comparison.prompt.text == stored.comparison.prompt.text


def test_lease_task_read_matches_the_orm():
    task = make_task(gold_rate=0.25, training_settings={"a": [1, 2]}, schedule={"n0": 3})
    ComparisonFactory.create_batch(2, task=task)
    user = member(task)
    outsider = UserFactory()
    assert selectors.get_lease_task(user=outsider, task_id=task.pk) is None
    staff = UserFactory(is_staff=True)
    assert selectors.get_lease_task(user=staff, task_id=task.pk) is not None
    label(user, lease_next(task=task, labeler=user))
    label(user, lease_next(task=task, labeler=user), kind="skip")
    got = selectors.get_lease_task(user=user, task_id=task.pk)
    assert got is not None and got.labeled_by_me == 1
    want = Task.objects.get(pk=task.pk)
    for field in Task._meta.concrete_fields:
        assert getattr(got, field.attname) == getattr(want, field.attname), field.name
    assert selectors.get_lease_task(user=user, task_id=task.pk + 1000) is None


def make_task(**kwargs) -> Task:
    return TaskFactory(**kwargs)


def member(task: Task):
    user = UserFactory()
    TaskLabelerFactory(task=task, labeler=user)
    return user


def label(user, assignment: Assignment, kind: str = "choice") -> None:
    submit_label(
        labeler=user,
        comparison_id=assignment.comparison_id,
        kind=kind,
        choice=0 if kind == "choice" else None,
        time_spent_ms=100,
    )


def test_re_asking_returns_the_same_unexpired_lease():
    task = make_task()
    ComparisonFactory.create_batch(3, task=task)
    user = member(task)
    first = lease_next(task=task, labeler=user)
    again = lease_next(task=task, labeler=user)
    assert first is not None and again is not None
    assert again.pk == first.pk
    assert Assignment.objects.count() == 1
    assert Comparison.objects.get(pk=first.comparison_id).open_slots == 0


def test_lease_stores_a_shuffled_permutation_and_expiry():
    task = make_task(k=5, lease_seconds=120)
    ComparisonFactory(task=task)
    user = member(task)
    before = timezone.now()
    assignment = lease_next(task=task, labeler=user, rng=random.Random(3))
    assert sorted(assignment.permutation) == [0, 1, 2, 3, 4]
    assert before + timedelta(seconds=119) < assignment.expires_at
    assert assignment.expires_at <= timezone.now() + timedelta(seconds=120)


def test_labeler_never_sees_a_comparison_they_labeled():
    task = make_task(labels_per_comparison=3)
    comparisons = ComparisonFactory.create_batch(4, task=task)
    user = member(task)
    seen = []
    while (assignment := lease_next(task=task, labeler=user)) is not None:
        seen.append(assignment.comparison_id)
        label(user, assignment, kind="skip" if len(seen) == 2 else "choice")
    assert sorted(seen) == sorted(c.pk for c in comparisons)


def test_overlap_is_respected():
    task = make_task(labels_per_comparison=2)
    comparison = ComparisonFactory(task=task)
    a, b, c = member(task), member(task), member(task)
    assert lease_next(task=task, labeler=a).comparison_id == comparison.pk
    assert lease_next(task=task, labeler=b).comparison_id == comparison.pk
    assert lease_next(task=task, labeler=c) is None
    comparison.refresh_from_db()
    assert comparison.open_slots == 0


def test_highest_priority_first_then_oldest():
    task = make_task()
    low = ComparisonFactory(task=task, priority=0.0)
    high = ComparisonFactory(task=task, priority=5.0)
    low2 = ComparisonFactory(task=task, priority=0.0)
    order = []
    user = member(task)
    while (assignment := lease_next(task=task, labeler=user)) is not None:
        order.append(assignment.comparison_id)
        label(user, assignment)
    assert order == [high.pk, low.pk, low2.pk]


def test_expired_lease_returns_to_the_pool():
    task = make_task(lease_seconds=60)
    comparison = ComparisonFactory(task=task)
    a, b = member(task), member(task)
    held = lease_next(task=task, labeler=a)
    assert lease_next(task=task, labeler=b) is None
    later = timezone.now() + timedelta(seconds=61)
    taken = lease_next(task=task, labeler=b, now=later)
    assert taken is not None and taken.comparison_id == comparison.pk
    held.refresh_from_db()
    assert held.state == Assignment.State.EXPIRED
    # The first labeler's work on the reclaimed lease is refused, not double counted.
    with pytest.raises(NoLiveLease):
        label(a, held)


def test_reclaim_gives_slots_back_and_counts():
    task = make_task(labels_per_comparison=2, lease_seconds=10)
    comparison = ComparisonFactory(task=task)
    gold = ComparisonFactory(task=task, is_gold=True, gold_choice=1)
    a, b = member(task), member(task)
    lease_next(task=task, labeler=a)
    lease_next(task=task, labeler=b)
    task.gold_rate = 1.0
    task.save()
    c = member(task)
    assert lease_next(task=task, labeler=c).comparison_id == gold.pk
    assert reclaim_expired_leases(task=task) == 0
    later = timezone.now() + timedelta(seconds=11)
    assert reclaim_expired_leases(task=task, now=later) == 3
    comparison.refresh_from_db()
    gold.refresh_from_db()
    assert comparison.open_slots == 2
    assert gold.open_slots == gold.overlap  # gold never takes slots
    assert reclaim_expired_leases(now=later) == 0


def test_gold_rate_one_serves_unseen_gold_first_ignoring_overlap():
    task = make_task(gold_rate=1.0)
    normal = ComparisonFactory(task=task)
    gold = ComparisonFactory(task=task, is_gold=True, gold_choice=0)
    a, b = member(task), member(task)
    for user in (a, b):  # both get the same gold comparison although overlap is 1
        assignment = lease_next(task=task, labeler=user)
        assert assignment.comparison_id == gold.pk
        label(user, assignment)
    # No unseen gold left: the pool serves the normal comparison.
    assert lease_next(task=task, labeler=a).comparison_id == normal.pk


def test_gold_rate_zero_never_serves_gold():
    task = make_task(gold_rate=0.0)
    ComparisonFactory(task=task, is_gold=True, gold_choice=0)
    user = member(task)
    assert lease_next(task=task, labeler=user) is None


def test_gold_is_mixed_in_at_the_configured_rate():
    task = make_task(gold_rate=0.25)
    ComparisonFactory.create_batch(200, task=task)
    ComparisonFactory.create_batch(200, task=task, is_gold=True, gold_choice=0)
    user = member(task)
    rng = random.Random(20190918)
    gold = 0
    for _ in range(200):
        assignment = lease_next(task=task, labeler=user, rng=rng)
        gold += assignment.comparison.is_gold
        label(user, assignment)
    # Binomial(200, 0.25): mean 50, sd 6.1; the seed makes it deterministic anyway.
    assert 32 <= gold <= 68


def test_inactive_task_is_refused():
    task = make_task(status=Task.Status.PAUSED)
    ComparisonFactory(task=task)
    with pytest.raises(TaskNotActive):
        lease_next(task=task, labeler=member(task))


def test_complete_and_retired_comparisons_are_not_served():
    task = make_task()
    ComparisonFactory(task=task, status=Comparison.Status.COMPLETE)
    ComparisonFactory(task=task, status=Comparison.Status.RETIRED)
    assert lease_next(task=task, labeler=member(task)) is None


@pytest.mark.parametrize("pool_size", [3, 60])
def test_queries_per_lease_do_not_grow_with_the_pool(pool_size, django_assert_max_num_queries):
    task = make_task(labels_per_comparison=2)
    ComparisonFactory.create_batch(pool_size, task=task)
    user = member(task)
    for _ in range(2):
        label(user, lease_next(task=task, labeler=user))
    with django_assert_max_num_queries(7):  # 5 statements + savepoint pair
        assert lease_next(task=task, labeler=user) is not None
