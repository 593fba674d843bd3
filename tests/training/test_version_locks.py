"""Publishing a policy version while labelers and the tick write, on PostgreSQL: no one waits on
the other in a cycle.

The publish locks the task row and retires the open comparisons of older versions; a lease or a
label being committed holds its comparison's row and, at COMMIT, PostgreSQL's foreign-key check
takes FOR KEY SHARE on the task row its new row points at. With the task locked FOR UPDATE that
was a deadlock (seen in CI: a policy run failed with ``DeadlockDetected``); FOR NO KEY UPDATE
lets the labeling transaction commit, and the publish then goes on. The tick giving expired
leases' slots back and the publish both update several comparisons: both lock them in id order
first (``lock_comparisons_in_order``), so one waits for the other.

Each test holds the labeling transaction open until the publish is seen waiting on a lock, so
the interleaving is the deadlocking one every time, not by chance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from labeling.models import Assignment, Comparison, Label
from labeling.services.labels import submit_label
from labeling.services.leasing import lease_next, reclaim_expired_leases
from tests.factories import ComparisonFactory, TaskFactory, TaskLabelerFactory, UserFactory
from training import services
from training.models import PolicyVersion, TrainingRun

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _in_thread(body: Callable[[], Any], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            body()
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for_a_lock_wait(timeout: float = 10.0) -> bool:
    """True once some backend of this database waits on a lock (the publish)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.05)
    return False


def _publish_while(
    labeling_write: Callable[[Callable[[], None]], None], task
) -> tuple[list[BaseException], bool]:
    """Run ``labeling_write(pause)`` in a transaction and a publish of policy v1 beside it:
    ``pause()`` (called by the write where it holds its locks, at its end by default) holds the
    write until the publish waits on a lock. The errors of both and whether the publish waited."""
    run = TrainingRun.objects.create(task=task, kind=TrainingRun.Kind.POLICY)
    assert services.claim_run(run_id=run.pk, worker="w1") is not None
    written, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def pause() -> None:
        if not written.is_set():
            written.set()
            release.wait(20)

    def labeling() -> None:
        with transaction.atomic():
            labeling_write(pause)
            pause()

    def publish() -> None:
        assert written.wait(20)
        services.publish_policy_version(
            run_id=run.pk,
            artifact_path="/a/v1",
            episodes=16,
            metrics={},
            reward_model_version_id=None,
            parent_id=None,
        )

    threads = [_in_thread(labeling, errors), _in_thread(publish, errors)]
    assert written.wait(20)
    waited = _wait_for_a_lock_wait()
    release.set()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    run.refresh_from_db()
    if not errors:
        assert run.status == TrainingRun.Status.SUCCEEDED
        assert PolicyVersion.objects.filter(task=task, number=1).exists()
    return errors, waited


@pytest.fixture
def labeling_task(require_postgres):
    task: Any = TaskFactory(k=4, labels_per_comparison=1, gold_rate=0.0)
    base = services.ensure_base_policy(task=task)
    comparison = ComparisonFactory(task=task, policy_version=base)
    labeler = UserFactory()
    TaskLabelerFactory(task=task, labeler=labeler)
    return task, comparison, labeler


def test_a_lease_being_taken_does_not_deadlock_a_publish(labeling_task):
    task, comparison, labeler = labeling_task

    def take_lease(pause: Callable[[], None]) -> None:
        assert lease_next(task=task, labeler=labeler) is not None

    errors, waited = _publish_while(take_lease, task)
    assert errors == [] and waited
    # The publish retired the comparison after the lease committed; the lease stands.
    comparison.refresh_from_db()
    assert comparison.status == Comparison.Status.RETIRED
    assert comparison.assignments.filter(labeler=labeler).exists()


def test_a_label_being_stored_does_not_deadlock_a_publish(labeling_task):
    task, comparison, labeler = labeling_task
    assert lease_next(task=task, labeler=labeler) is not None

    def label(pause: Callable[[], None]) -> None:
        _, created = submit_label(
            labeler=labeler,
            comparison_id=comparison.pk,
            kind=Label.Kind.CHOICE,
            choice=1,
            time_spent_ms=900,
        )
        assert created

    errors, waited = _publish_while(label, task)
    assert errors == [] and waited
    # Labeled before the publish could retire it: it is no longer an unlabeled comparison.
    comparison.refresh_from_db()
    assert comparison.status == Comparison.Status.COMPLETE
    assert Label.objects.filter(comparison=comparison, labeler=labeler).count() == 1


def test_the_tick_reclaiming_leases_does_not_deadlock_a_publish(labeling_task):
    """Both write several comparisons: the tick gives expired leases' slots back (one UPDATE per
    number of leases reclaimed on a comparison), the publish retires v0's open comparisons."""
    task, first, _ = labeling_task
    second: Any = ComparisonFactory(task=task, policy_version=first.policy_version)
    Comparison.objects.filter(pk__in=[first.pk, second.pk]).update(overlap=2, open_slots=0)
    expired = timezone.now() - timedelta(minutes=1)
    # Two expired leases of the second comparison, then one of the first: the tick's first
    # UPDATE is the second comparison's, the publish's scan meets the first one first.
    for comparison in [second, second, first]:
        labeler: Any = UserFactory()
        Assignment.objects.create(
            comparison=comparison,
            labeler=labeler,
            task=task,
            permutation=[0, 1, 2, 3],
            expires_at=expired,
        )
    Comparison.objects.filter(pk=first.pk).update(open_slots=1)

    def reclaim(pause: Callable[[], None]) -> None:
        def pause_after_the_first_slots_update(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            if sql.startswith('UPDATE "labeling_comparison"'):
                pause()
            return result

        with connection.execute_wrapper(pause_after_the_first_slots_update):
            assert reclaim_expired_leases(task=task) == 3

    errors, waited = _publish_while(reclaim, task)
    assert errors == [] and waited
    statuses = dict(Comparison.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "retired", second.pk: "retired"}
    slots = dict(Comparison.objects.values_list("pk", "open_slots"))
    assert slots == {first.pk: 2, second.pk: 2}
