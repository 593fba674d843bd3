"""Reward-model runs in the loop: every label trained on, warm starts on fresh labels plus a
bounded replay, and prospective accuracy (on labels that arrived after a model was trained)."""

from __future__ import annotations

import pytest

from tests.training.conftest import add_labels, tiny_task
from training import selectors, services
from training.models import RewardModelVersion, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> str:
    from tests.training.ml.conftest import build_model, build_tokenizer

    directory = tmp_path_factory.mktemp("tiny-reward-runs")
    tokenizer = build_tokenizer()
    build_model(len(tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def train_reward(task) -> RewardModelVersion:
    from training import jobs

    run = services.schedule_run(task=task, kind=TrainingRun.Kind.REWARD)
    claimed = services.claim_run(run_id=run.pk, worker="test")
    version = jobs.run_reward_training(claimed)
    assert version is not None
    return version


def test_warm_started_retrains_use_fresh_labels_and_a_bounded_replay(
    tiny_model_path, settings, tmp_path
):
    settings.ARTIFACTS_DIR = tmp_path
    task = tiny_task(tiny_model_path)
    task.training_settings = {
        "preset": "cpu-tiny",
        "reward": {"normalization_samples": 8, "warm_start": True, "replay_ratio": 0.5},
    }
    task.save()
    first = add_labels(task, 10)
    v1 = train_reward(task)
    assert v1.label_count == 10 and v1.labels_used.count() == 10  # no holdout: all 10
    assert v1.metrics["labels_new"] == 10 and v1.metrics["last_label_id"] == first[-1].pk
    assert "prospective_accuracy" not in v1.metrics

    fresh = add_labels(task, 4)
    v2 = train_reward(task)
    used = set(v2.labels_used.values_list("pk", flat=True))
    assert {label.pk for label in fresh} <= used  # every fresh label
    assert len(used) == 4 + 2  # plus floor(0.5 * 4) replayed old ones
    assert v2.label_count == 14 and v2.metrics["warm_start"] is True
    v1.refresh_from_db()
    # v1 scored on the 4 labels it never saw, before v2 trained on them.
    assert v1.metrics["prospective_labels"] == 4
    assert 0.0 <= v1.metrics["prospective_accuracy"] <= 1.0
    assert v1.metrics["prospective_accuracy"] in {0.0, 0.25, 0.5, 0.75, 1.0}
    assert selectors.reward_model_label_cutoff(version=v2) == fresh[-1].pk


def test_cold_retrains_use_every_label(tiny_model_path, settings, tmp_path):
    settings.ARTIFACTS_DIR = tmp_path
    task = tiny_task(tiny_model_path)
    add_labels(task, 6)
    train_reward(task)
    add_labels(task, 3)
    v2 = train_reward(task)
    assert v2.labels_used.count() == 9 and v2.metrics["labels_new"] == 3
