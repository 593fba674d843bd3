"""The worker glue against real (tiny) models: sampling, reward model, PPO chunks, publishing."""

from __future__ import annotations

import pytest

from labeling.models import Comparison, Label
from tests.factories import UserFactory
from tests.training.conftest import save_tiny_model, tiny_task
from training import selectors, services
from training.models import ComparisonScores, EvalSample, PolicyVersion, TrainingRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory) -> str:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-loop-model"))


def label_all(task, choice=0):
    labeler = UserFactory()
    for comparison in Comparison.objects.filter(task=task, status="open", label_count=0):
        Label.objects.create(
            comparison=comparison,
            labeler=labeler,
            task=task,
            kind="choice",
            choice=choice,
            k=comparison.k,
            display_order=[0, 1, 2, 3],
        )
        Comparison.objects.filter(pk=comparison.pk).update(label_count=1, status="complete")


def run_due(task, kind):
    from training import jobs

    run = selectors.live_run(task_id=task.pk, kind=kind)
    assert run is not None, f"no {kind} run was scheduled"
    claimed = services.claim_run(run_id=run.pk, worker="test")
    body = jobs.run_reward_training if kind == "reward" else jobs.run_policy_training
    return body(claimed)


def test_loop_in_process(tiny_model_path, settings, tmp_path, caplog, monkeypatch):
    from training import jobs, tasks

    scoring_jobs: list[int] = []
    monkeypatch.setattr(tasks.score_with_reward_model, "delay_on_commit", scoring_jobs.append)

    caplog.set_level("INFO", logger="training.jobs")
    settings.ARTIFACTS_DIR = tmp_path
    task = tiny_task(tiny_model_path)
    services.tick(task_id=task.pk)
    v0 = selectors.promoted_policy(task_id=task.pk)
    # v0 answers the eval prompt at once (the sample browser's baseline), unscored: no RM yet.
    assert jobs.sample_eval_answers(v0.pk) == 1
    assert jobs.sample_eval_answers(v0.pk) == 0  # once
    assert EvalSample.objects.get(policy_version=v0).reward is None
    assert jobs.sample_comparisons(task.pk, v0.pk, 10) == 4  # the buffer's size
    assert jobs.sample_comparisons(task.pk, v0.pk, 10) == 0  # already full
    comparison = Comparison.objects.filter(task=task).first()
    assert len(comparison.samples) == 4 and len(comparison.sample_token_ids) == 4
    assert comparison.prompt.token_ids  # the query ids the model saw

    label_all(task)
    services.tick(task_id=task.pk)
    rm = run_due(task, "reward")
    assert rm.number == 1 and rm.label_count == 4 and rm.labels_used.count() == 4
    assert {"held_out_accuracy", "train_loss", "label_count"} <= set(rm.metrics)
    # Scoring is a job of its own (sampling queue): the next PPO chunk does not wait for it.
    assert scoring_jobs == [rm.pk]
    assert not ComparisonScores.objects.filter(reward_model_version=rm).exists()
    assert jobs.score_with_reward_model(rm.pk) == 4
    assert ComparisonScores.objects.filter(reward_model_version=rm).count() == 4
    baseline = EvalSample.objects.get(policy_version=v0)  # scored by the new reward model
    assert baseline.reward is not None and baseline.reward_model_version_id == rm.pk
    assert TrainingRun.objects.get(reward_model_version=rm).progress == 1.0
    [line] = [r.getMessage() for r in caplog.records if "reward model v1:" in r.getMessage()]
    assert "4 labels (4 trained on, 4 new, from the base model), train accuracy" in line
    assert line.endswith(" s")

    jobs.sample_comparisons(task.pk, v0.pk, 10)
    label_all(task)  # 8 labels: l(16) = 4 + 4 * 0.75 = 7 <= 8
    services.tick(task_id=task.pk)
    v1 = run_due(task, "policy")
    assert v1.number == 1 and v1.episodes == 16 and v1.parent_id == v0.pk
    assert selectors.promoted_policy(task_id=task.pk) == v1
    assert v1.reward_model_version_id is not None
    run = TrainingRun.objects.get(policy_version=v1)
    assert run.status == "succeeded" and run.metrics and "kl" in run.metrics[-1]
    assert run.progress == 1.0
    [line] = [r.getMessage() for r in caplog.records if "policy v1:" in r.getMessage()]
    assert "PPO episodes 0 -> 16 against reward model v1: score " in line
    assert ", KL " in line and ", beta " in line
    assert EvalSample.objects.filter(policy_version=v1).count() == 1
    assert_eval_samples_record_ended(task, v1)
    # New comparisons come from the new version.
    assert jobs.sample_comparisons(task.pk, v1.pk, 10) == 4
    assert Comparison.objects.filter(policy_version=v1).count() == 4

    # The next chunk resumes from v1's state and continues the episode count.
    services.tick(task_id=task.pk)
    v2 = run_due(task, "policy")
    assert v2.episodes == 32 and v2.parent_id == v1.pk
    assert len(TrainingRun.objects.get(policy_version=v2).metrics) == 1

    # Roll back to v1: the next PPO chunk continues from v1 again.
    services.rollback_policy(task=task)
    assert selectors.ppo_head(task_id=task.pk) == v1


def test_interrupted_policy_run_resumes_and_publishes_once(tiny_model_path, settings, tmp_path):
    """A worker dies after PPO finished but before publishing: the next run publishes the same
    training exactly once, without training it again."""
    from training import jobs

    settings.ARTIFACTS_DIR = tmp_path
    task = tiny_task(tiny_model_path)
    services.tick(task_id=task.pk)
    v0 = selectors.promoted_policy(task_id=task.pk)
    jobs.sample_comparisons(task.pk, v0.pk, 8)
    label_all(task)
    services.tick(task_id=task.pk)
    run_due(task, "reward")
    jobs.sample_comparisons(task.pk, v0.pk, 8)
    label_all(task)
    services.tick(task_id=task.pk)
    first = selectors.live_run(task_id=task.pk, kind="policy")
    claimed = services.claim_run(run_id=first.pk, worker="doomed")
    # Train the chunk like the dead worker did, but die before publishing.
    from training.artifacts import task_dir
    from training.ml.ppo import train_policy
    from training.task_settings import training_config

    config = training_config(task)
    config.ppo.total_episodes = 32
    state_dir = task_dir(task.pk) / "ppo" / "from-v0"
    rm = selectors.latest_reward_model(task_id=task.pk)
    train_policy(
        task.base_model,
        rm.artifact_path,
        ["The movie was good."],
        state_dir,
        config=config.ppo,
        sampling=config.sampling,
        episodes=16,
    )
    services.fail_run(run_id=claimed.pk, error="worker lost")
    services.tick(task_id=task.pk)
    version = run_due(task, "policy")
    assert version.episodes == 16
    assert PolicyVersion.objects.filter(task=task).count() == 2
    assert TrainingRun.objects.filter(task=task, kind="policy", status="succeeded").count() == 1


def ends_under_the_rule(task, token_ids: list[int]) -> bool:
    from training.ml.models import load_tokenizer
    from training.ml.sampling import truncate_responses, truncation_token_ids

    tokenizer = load_tokenizer(task.base_model)
    mask, ended = truncate_responses(
        torch.tensor([token_ids]),
        truncation_token_ids(tokenizer, task.truncation_token),
        task.truncation_min_position,
        [tokenizer.eos_token_id],
    )
    return bool(ended[0]) and bool(mask.all())


def assert_eval_samples_record_ended(task, version):
    for sample in EvalSample.objects.filter(policy_version=version):
        assert sample.ended is not None
        assert sample.ended == ends_under_the_rule(task, sample.token_ids)


def test_sample_comparisons_stores_only_responses_that_ended(tiny_model_path, caplog):
    from training import jobs
    from training.ml.models import load_tokenizer

    task = tiny_task(tiny_model_path)
    services.tick(task_id=task.pk)
    v0 = selectors.promoted_policy(task_id=task.pk)
    with caplog.at_level("INFO", logger="training.jobs"):
        assert jobs.sample_comparisons(task.pk, v0.pk, 10) == 4
    tokenizer = load_tokenizer(task.base_model)
    for comparison in Comparison.objects.filter(task=task):
        assert comparison.sample_ended == [True] * 4
        for ids, text in zip(comparison.sample_token_ids, comparison.samples, strict=True):
            assert ends_under_the_rule(task, ids)
            shown = tokenizer.decode(ids, skip_special_tokens=True)
            assert services.comparisons.clean_text(shown) == text
    v0.refresh_from_db()
    # Round 1 samples 4*K candidates for each of the 4 prompts; about a third end.
    assert v0.candidates_sampled >= 4 * 16
    assert 16 <= v0.candidates_ended < v0.candidates_sampled
    line = next(r.getMessage() for r in caplog.records if "candidates" in r.getMessage())
    assert f"4 comparisons of 4 ended responses from {v0.candidates_sampled} candidates" in line
    assert f"({100 * v0.ended_fraction:.0f}% ended" in line


def test_sample_comparisons_replaces_prompts_that_never_end(tiny_model_path, monkeypatch):
    """A prompt dropped for want of K ended responses (all its copies) is replaced by another
    one in the same job (the buffer fills), and every candidate counts for the version."""
    from training import jobs, sampler
    from training.ml import ended

    task = tiny_task(tiny_model_path)
    services.tick(task_id=task.pk)
    v0 = selectors.promoted_policy(task_id=task.pk)
    calls: list[tuple[list, ended.EndedSamples]] = []

    def first_query_never_ends(model, tokenizer, queries, config, **kwargs):
        result = ended.sample_ended_comparisons(model, tokenizer, queries, config, **kwargs)
        if not calls:  # as if the first prompt never ended: all its copies are dropped
            for i, query in enumerate(queries):
                if query == queries[0]:
                    result.samples[i] = None
        calls.append((list(queries), result))
        return result

    monkeypatch.setattr(sampler, "sample_ended_comparisons", first_query_never_ends)
    assert jobs.sample_comparisons(task.pk, v0.pk, 10) == 4
    # 4 comparisons wanted: one prompt in 4 copies, then another one in 4 copies.
    assert [len(queries) for queries, _ in calls] == [4, 4]
    assert len({tuple(q) if isinstance(q, list) else q for q in calls[0][0]}) == 1
    dropped = calls[0][0][0]  # the prompts' texts (they have no token ids yet)
    assert dropped not in calls[1][0]
    assert not Comparison.objects.filter(prompt__text=dropped).exists()
    v0.refresh_from_db()
    assert v0.candidates_sampled == sum(r.candidates for _, r in calls)
    assert v0.candidates_ended == sum(r.ended for _, r in calls)


def test_first_round_candidates_follow_the_version_ended_fraction():
    from training import jobs

    assert jobs.first_round_candidates(4, PolicyVersion(candidates_sampled=10)) is None
    assert jobs.first_round_candidates(4, PolicyVersion(candidates_sampled=64)) == 32  # none
    always = PolicyVersion(candidates_sampled=100, candidates_ended=100)
    assert jobs.first_round_candidates(4, always) == 4
    often = jobs.first_round_candidates(
        4, PolicyVersion(candidates_sampled=100, candidates_ended=80)
    )
    third = jobs.first_round_candidates(
        4, PolicyVersion(candidates_sampled=90, candidates_ended=30)
    )
    assert often is not None and third is not None and 4 < often < third <= 32
