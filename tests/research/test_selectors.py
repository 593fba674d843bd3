import pytest

from research import selectors
from tests.factories import TaskFactory
from tests.research.factories import PolicyVersionFactory

pytestmark = pytest.mark.django_db


def test_ended_fractions_per_sampled_policy_version():
    task = TaskFactory()
    PolicyVersionFactory(task=task, number=2, candidates_sampled=100, candidates_ended=90)
    PolicyVersionFactory(task=task, number=0, candidates_sampled=64, candidates_ended=16)
    PolicyVersionFactory(task=task, number=1)  # never sampled for comparisons: no point
    PolicyVersionFactory(task=TaskFactory(), number=0, candidates_sampled=9, candidates_ended=9)
    rows = selectors.ended_fractions(task=task)
    assert [(r.version, r.candidates, r.ended) for r in rows] == [(0, 64, 16), (2, 100, 90)]
    assert [r.fraction for r in rows] == [0.25, 0.9]
    assert selectors.ended_fractions(task=TaskFactory()) == []
