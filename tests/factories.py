"""factory_boy factories for the domain."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from labeling.models import Comparison, InstructionsVersion, Prompt, Task, TaskLabeler


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"labeler{n}")
    password = factory.django.Password("pw-for-tests-123")


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    name = factory.Sequence(lambda n: f"task {n}")
    status = Task.Status.ACTIVE
    k = 4
    lease_seconds = 600


class TaskLabelerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaskLabeler

    task = factory.SubFactory(TaskFactory)
    labeler = factory.SubFactory(UserFactory)


class InstructionsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InstructionsVersion

    task = factory.SubFactory(TaskFactory)
    version = 1
    text = "Pick the continuation you like best."


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    task = factory.SubFactory(TaskFactory)
    text = factory.Sequence(lambda n: f"Once upon a time, prompt {n}")


class ComparisonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Comparison

    task = factory.SubFactory(TaskFactory)
    prompt = factory.SubFactory(PromptFactory, task=factory.SelfAttribute("..task"))
    k = factory.SelfAttribute("task.k")
    samples = factory.LazyAttribute(
        lambda o: [f"sample {i} of {o.prompt.text}" for i in range(o.k)]
    )
    overlap = factory.SelfAttribute("task.labels_per_comparison")
    open_slots = factory.SelfAttribute("overlap")
