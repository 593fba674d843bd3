"""Load (or refresh) the demo task: logins, settings, instructions, prompts, comparisons.
``--task summarization`` (``DEMO_TASK=summarization``) loads the news-summary task instead
(research/demo/summarization.py)."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from labeling.models import Task
from labeling.services.imports import import_comparisons, import_prompts
from labeling.services.tasks import add_labeler, set_instructions
from research.demo.data import (
    COMPARISONS_FILE,
    DEMO_INSTRUCTIONS,
    DEMO_TASK_NAME,
    DEMO_TASK_SETTINGS,
    DEMO_USERS,
    EVAL_PROMPTS_FILE,
)
from research.demo.summarization import DemoDataMissing, load_summarization_demo
from research.services import setup_researcher_group
from training.services.versions import ensure_base_policy


class Command(BaseCommand):
    help = "Create the demo logins and the demo task with prompts and comparisons (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--task",
            choices=["continuation", "summarization"],
            default=os.environ.get("DEMO_TASK") or "continuation",
            help="which demo task (default: $DEMO_TASK, else continuation)",
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        researchers = setup_researcher_group()
        users = get_user_model()
        for demo in DEMO_USERS:
            user, _ = users.objects.get_or_create(username=demo.username)
            user.set_password(demo.password)
            user.is_staff = demo.role == "researcher"
            user.save()
            if demo.role == "researcher":
                user.groups.add(researchers)

        if options["task"] == "summarization":
            labelers = [
                users.objects.get(username=d.username) for d in DEMO_USERS if d.role == "labeler"
            ]
            try:
                _, message = load_summarization_demo(labelers=labelers)
            except DemoDataMissing as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(self.style.SUCCESS(message))
            return
        task, created = Task.objects.get_or_create(name=DEMO_TASK_NAME, defaults=DEMO_TASK_SETTINGS)
        if not created:
            self.stdout.write(f"Demo task {task.pk} exists; logins refreshed.")
            return
        set_instructions(task=task, text=DEMO_INSTRUCTIONS)
        for demo in DEMO_USERS:
            if demo.role == "labeler":
                add_labeler(task=task, labeler=users.objects.get(username=demo.username))
        ensure_base_policy(task=task)
        # The comparisons create their train prompts (with the token ids the model saw).
        with COMPARISONS_FILE.open("rb") as stream:
            comparisons = import_comparisons(task=task, stream=stream)
        with EVAL_PROMPTS_FILE.open("rb") as stream:
            evals = import_prompts(task=task, stream=stream)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo task {task.pk}: {comparisons.prompts_created} train prompts with "
                f"{comparisons.comparisons_created} comparisons from policy v0, "
                f"{evals.rows} eval prompts."
            )
        )
