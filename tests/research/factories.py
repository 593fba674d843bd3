"""Factories for trained versions, runs, scores, eval samples and labels, and a helper that
fills a task with a realistic history for the dashboard tests."""

from __future__ import annotations

import random
from datetime import timedelta

import factory
from django.utils import timezone

from labeling.models import Label, Prompt, Task
from tests.factories import ComparisonFactory, PromptFactory, TaskLabelerFactory, UserFactory
from tests.synthetic_text import choose, prompt_and_samples
from training.models import (
    ComparisonScores,
    EvalSample,
    PolicyVersion,
    RewardModelVersion,
    TrainingRun,
    VersionStatus,
)


class RewardModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RewardModelVersion

    number = factory.Sequence(lambda n: n + 1)
    label_count = 100
    metrics = factory.LazyAttribute(lambda o: {"held_out_accuracy": 0.6, "train_loss": 1.2})


class PolicyVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PolicyVersion

    number = factory.Sequence(lambda n: n)
    episodes = 0
    metrics = factory.LazyAttribute(lambda o: {"mean_score": 0.0, "kl": 0.0, "beta": 0.15})


class TrainingRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingRun

    kind = TrainingRun.Kind.POLICY
    status = TrainingRun.Status.SUCCEEDED
    metrics = factory.LazyFunction(list)


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    comparison = factory.SubFactory(ComparisonFactory)
    task = factory.SelfAttribute("comparison.task")
    labeler = factory.SubFactory(UserFactory)
    kind = Label.Kind.CHOICE
    choice = 0
    k = factory.SelfAttribute("comparison.k")
    display_order = factory.LazyAttribute(lambda o: list(range(o.k)))
    time_spent_ms = 4000


def populate_task(
    task: Task,
    *,
    preferences: dict[str, str],
    comparisons: int = 60,
    gold_every: int = 6,
    seed: int = 0,
) -> dict[str, object]:
    """Every labeler (name -> "copy" | "sentiment" | "random") labels every comparison.

    Adds reward-model versions with scores (the RM agrees with the "copy" preference), policy
    versions with their sampling counts (v0: 328 of 960 candidates ended, v1: 480 of 640) and
    eval samples (v0's first one did not end), and a policy run with per-step metrics.
    """
    rng = random.Random(seed)
    now = timezone.now()
    users = {}
    for name in preferences:
        user = UserFactory(username=name)
        TaskLabelerFactory(task=task, labeler=user)
        users[name] = user
    rm1 = RewardModelVersionFactory(
        task=task,
        number=1,
        label_count=comparisons,
        metrics={
            "held_out_accuracy": 0.55,
            "prospective_accuracy": 0.5,
            "prospective_labels": comparisons,
        },
    )
    rm2 = RewardModelVersionFactory(
        task=task, number=2, label_count=comparisons * 2, metrics={"held_out_accuracy": 0.68}
    )
    base = PolicyVersionFactory(
        task=task,
        number=0,
        status=VersionStatus.RETIRED,
        candidates_sampled=960,
        candidates_ended=328,
    )
    tuned = PolicyVersionFactory(
        task=task,
        number=1,
        parent=base,
        reward_model_version=rm2,
        episodes=512,
        status=VersionStatus.PROMOTED,
        promoted_at=now,
        metrics={"mean_score": 0.8, "kl": 3.1, "beta": 0.12},
        candidates_sampled=640,
        candidates_ended=480,
    )
    TrainingRunFactory(
        task=task,
        policy_version=tuned,
        metrics=[
            {"episode": e, "score": e / 512, "kl": 6 * e / 512, "beta": 0.15 - 0.03 * e / 512}
            for e in range(0, 513, 64)
        ],
    )
    labels = []
    for c in range(comparisons):
        prompt_text, samples = prompt_and_samples(rng, k=task.k)
        prompt = PromptFactory(task=task, text=prompt_text)
        is_gold = c % gold_every == 0
        copy_best = choose("copy", prompt_text, samples, random.Random(c))
        comparison = ComparisonFactory(
            task=task,
            prompt=prompt,
            samples=samples,
            overlap=len(users),
            open_slots=0,
            policy_version=tuned,
            is_gold=is_gold,
            gold_choice=copy_best if is_gold else None,
        )
        scores = [0.0] * task.k
        scores[copy_best] = 1.0
        ComparisonScores.objects.create(
            comparison=comparison, reward_model_version=rm2, scores=scores
        )
        for name, user in users.items():
            order = list(range(task.k))
            rng.shuffle(order)
            labels.append(
                Label(
                    comparison=comparison,
                    task=task,
                    labeler=user,
                    kind=Label.Kind.CHOICE,
                    choice=choose(preferences[name], prompt_text, samples, rng),
                    k=task.k,
                    display_order=order,
                    time_spent_ms=rng.randint(1500, 9000),
                )
            )
    Label.objects.bulk_create(labels)
    ids = list(Label.objects.filter(task=task).order_by("id").values_list("id", flat=True))
    for i, pk in enumerate(ids):  # chronological, one label every 3 minutes up to now
        Label.objects.filter(pk=pk).update(created_at=now - timedelta(minutes=3 * (len(ids) - i)))
    for i in range(3):
        prompt = PromptFactory(task=task, text=f"Eval prompt {i}", split=Prompt.Split.EVAL)
        EvalSample.objects.create(
            policy_version=base, prompt=prompt, text=f"base answer {i}", reward=-0.2,
            ended=i != 0,
        )  # fmt: skip
        EvalSample.objects.create(
            policy_version=tuned, prompt=prompt, text=f"tuned answer {i}", reward=0.9,
            reward_model_version=rm2, ended=True,
        )  # fmt: skip
    return {"users": users, "rms": [rm1, rm2], "policies": [base, tuned]}
