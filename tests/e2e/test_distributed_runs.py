"""Training runs under torchrun with 2 gloo processes, launched by the real Celery task (a real
worker process, Redis, the test PostgreSQL database) on a tiny model: they publish what one
process publishes, and a killed rank fails the run cleanly so that the next tick resumes it.

Run with E2E_REDIS_DB set to a Redis database of your own (default 13, see test_loop.py).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from labeling.models import Comparison, Label, Prompt
from tests.e2e.test_loop import e2e_broker, tiny_model_path, wait_for, workers
from tests.factories import UserFactory
from tests.training.conftest import tiny_task
from training import services
from training.models import PolicyVersion, RewardModelVersion, TrainingRun

__all__ = ["e2e_broker", "tiny_model_path", "workers"]  # fixtures shared with test_loop

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1500)]
SAMPLES = ["It was good.", "Bad.", "A nice day it was.", "Cats."]


def labeled_task(model_path: str, **schedule):
    """A tiny task with v0 and 8 labels on fixed comparisons. One train prompt: the reward
    model's normalization samples it (prompts are drawn in random order), so two tasks get
    the same normalization."""
    task = tiny_task(model_path, lease_seconds=60, buffer=0, **schedule)
    train = list(task.prompts.filter(split="train").order_by("pk"))
    Prompt.objects.filter(pk__in=[p.pk for p in train[1:]]).update(split="eval")
    v0 = services.ensure_base_policy(task=task)
    labeler = UserFactory()
    for i in range(8):
        comparison = Comparison.objects.create(
            task=task, prompt=train[0], k=4, policy_version=v0, samples=SAMPLES, overlap=1,
            open_slots=0, label_count=1, status="complete",
        )  # fmt: skip
        Label.objects.create(
            comparison=comparison, labeler=labeler, task=task, kind="choice", choice=i % 4, k=4,
            display_order=[0, 1, 2, 3],
        )  # fmt: skip
    return task


def train_in_process(task, kind: str):
    """The same run in this process (TRAINING_PROCESSES=1), as a one-GPU worker trains."""
    from training import jobs

    run = TrainingRun.objects.create(task=task, kind=kind)  # no message: the worker keeps off
    claimed = services.claim_run(run_id=run.pk, worker="one-process")
    body = jobs.run_reward_training if kind == "reward" else jobs.run_policy_training
    return body(claimed)


def test_two_processes_publish_what_one_process_does(tiny_model_path, workers, settings, tmp_path):
    import torch
    from safetensors.torch import load_file

    from training.ml.models import load_model
    from training.ml.reward import load_reward_model, score_token_ids

    settings.ARTIFACTS_DIR = tmp_path / "in-process"
    two = labeled_task(tiny_model_path, chunk_episodes=32)
    one = labeled_task(tiny_model_path, chunk_episodes=32)
    workers.env["TRAINING_PROCESSES"] = "2"
    workers.start("train", "training")

    services.schedule_run(task=two, kind=TrainingRun.Kind.REWARD)  # the Celery task, 2 ranks
    rm_two = wait_for(
        lambda: RewardModelVersion.objects.filter(task=two).first(), 600, "RM v1", workers
    )
    rm_one = train_in_process(one, TrainingRun.Kind.REWARD)
    assert rm_two.metrics["processes"] == 2 and rm_one.metrics["processes"] == 1
    assert rm_two.metrics["train_loss"] == pytest.approx(rm_one.metrics["train_loss"], rel=1e-5)
    assert rm_two.gain == pytest.approx(rm_one.gain, rel=1e-3)
    assert rm_two.bias == pytest.approx(rm_one.bias, rel=1e-3, abs=1e-3)
    model_two, _, _ = load_reward_model(rm_two.artifact_path)
    model_one, tokenizer, _ = load_reward_model(rm_one.artifact_path)
    weights_two = dict(model_two.named_parameters())
    for name, weight in model_one.named_parameters():
        if name.endswith("weight"):  # biases: see test_reward_batches (rounding noise x Adam)
            torch.testing.assert_close(weight, weights_two[name], rtol=1e-4, atol=1e-5)
    query = tokenizer("The movie was good.")["input_ids"]
    responses = [tokenizer(s)["input_ids"] for s in SAMPLES]
    torch.testing.assert_close(
        score_token_ids(model_one, [query] * 4, responses),
        score_token_ids(model_two, [query] * 4, responses),
        rtol=0,
        atol=1e-3,
    )

    services.schedule_run(task=two, kind=TrainingRun.Kind.POLICY)
    v1_two = wait_for(
        lambda: PolicyVersion.objects.filter(task=two, number=1).first(), 600, "v1", workers
    )
    v1_one = train_in_process(one, TrainingRun.Kind.POLICY)
    assert v1_two.episodes == v1_one.episodes == 32  # two PPO batches of 16
    assert "run body under torchrun: 2 processes" in workers.logs()
    history = {
        name: torch.load(Path(v.artifact_path) / "state.pt", weights_only=False)["history"]
        for name, v in (("one", v1_one), ("two", v1_two))
    }
    for mine, theirs in zip(history["one"], history["two"], strict=True):
        for key in ("score", "kl", "response_length", "policy_loss", "value_loss", "entropy"):
            assert theirs[key] == pytest.approx(mine[key], rel=1e-3, abs=1e-5), key
    trained = {
        name: load_file(Path(v.artifact_path) / "trainable.safetensors")
        for name, v in (("one", v1_one), ("two", v1_two))
    }
    for name, weight in trained["one"].items():
        if name.endswith("weight"):
            torch.testing.assert_close(weight, trained["two"][name], rtol=1e-3, atol=1e-4)
    tokens = torch.tensor([query + responses[2]])
    logprobs = [
        load_model(str(Path(v.artifact_path) / "model"))(tokens).logits.log_softmax(-1)
        for v in (v1_one, v1_two)
    ]
    torch.testing.assert_close(logprobs[0], logprobs[1], rtol=0, atol=1e-3)


def test_a_killed_rank_fails_the_run_and_the_next_tick_resumes_it(tiny_model_path, workers):
    task = labeled_task(tiny_model_path, episodes=128, chunk_episodes=128)
    workers.env["TRAINING_PROCESSES"] = "2"
    workers.start("light", "default,sampling", beat=True)
    workers.start("train", "training")
    run_dir = Path(workers.env["PREFERENCE_LOOP_ARTIFACTS"]) / f"task-{task.pk}" / "runs"

    def ppo_under_way():
        run = TrainingRun.objects.filter(task=task, kind="policy", status="running").first()
        if run is None or len(run.metrics) < 1:
            return None
        pid_file = run_dir / f"run-{run.pk}" / "rank-1.pid"
        return run if pid_file.is_file() else None

    doomed = wait_for(ppo_under_way, 600, "a PPO run under torchrun past its first batch", workers)
    pids = [int((run_dir / f"run-{doomed.pk}" / f"rank-{r}.pid").read_text()) for r in (0, 1)]
    os.kill(pids[1], signal.SIGKILL)

    def failed():
        doomed.refresh_from_db()
        return doomed.status == "failed"

    wait_for(failed, 120, "the run with a killed rank to fail", workers)
    assert "2 training processes failed (torchrun exit code" in doomed.error, doomed.error
    assert "worker lost" not in doomed.error  # failed by its worker, not reaped as stale
    assert all(gone(pid) for pid in pids)  # the surviving rank was stopped too
    # The failed run published nothing. (The next tick may already have resumed it and
    # published v1 on a fast machine: that run is checked below.)
    assert doomed.policy_version_id is None
    assert (
        not PolicyVersion.objects.filter(task=task, number=1)
        .exclude(
            pk__in=TrainingRun.objects.filter(task=task, status="succeeded").values(
                "policy_version"
            )
        )
        .exists()
    )

    version = wait_for(
        lambda: PolicyVersion.objects.filter(task=task, number=1).first(), 600, "v1", workers
    )
    assert version.episodes == 128
    policy_runs = TrainingRun.objects.filter(task=task, kind="policy")
    assert policy_runs.filter(status="succeeded").count() == 1
    assert policy_runs.filter(status="failed").count() == 1
    resumed = policy_runs.get(status="succeeded")
    # From the doomed run's checkpoint, not from episode 0 (whose first batch reports 16). On a
    # fast machine the ranks may have written all 128 episodes' checkpoint before the kill
    # landed: then the resumed run has nothing left to train and publishes that checkpoint.
    assert [m["episode"] for m in resumed.metrics[:1]] != [16], resumed.metrics
    assert not resumed.metrics or resumed.metrics[-1]["episode"] == 128
    time.sleep(3)  # a duplicate would show up now
    assert PolicyVersion.objects.filter(task=task).count() == 2


def gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False
