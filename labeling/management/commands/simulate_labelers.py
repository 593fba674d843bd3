"""Simulated labelers labeling a task through the HTTP API, like people at a given rate."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Task
from labeling.simulation import PREFERENCES, RunOptions, ensure_simulated_labelers, run_simulation


class Command(BaseCommand):
    help = (
        "Create N simulated labelers on a task (if needed), log them in through the API and "
        "label with a preference (sentiment, length, copy, random) until --limit, --duration, "
        "or nothing is left (after --idle seconds of polling, for an online loop)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--task", type=int, required=True, help="task id")
        parser.add_argument("--labelers", type=int, default=1)
        parser.add_argument("--preference", choices=sorted(PREFERENCES), default="sentiment")
        parser.add_argument(
            "--rate",
            type=float,
            default=0.0,
            help="labels per second per labeler (0: as fast as allowed)",
        )
        parser.add_argument("--limit", type=int, default=None, help="labels in all")
        parser.add_argument(
            "--until-budget",
            action="store_true",
            help="label up to the task's label budget (minus labels so far)",
        )
        parser.add_argument(
            "--idle",
            type=float,
            default=0.0,
            help="keep polling this many seconds when nothing is left",
        )
        parser.add_argument("--duration", type=float, default=None, help="stop after seconds")
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--prefix", default="sim")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        task = Task.objects.filter(pk=options["task"]).first()
        if task is None:
            raise CommandError(f"task {options['task']} does not exist")
        if options["labelers"] < 1:
            raise CommandError("--labelers must be at least 1")
        limit = options["limit"]
        if options["until_budget"]:
            left = max(0, task.label_budget - task.labels.count())
            limit = left if limit is None else min(limit, left)
        names = ensure_simulated_labelers(
            task=task, count=options["labelers"], prefix=options["prefix"]
        )
        run = RunOptions(
            base_url=options["url"],
            task_id=task.pk,
            preference=options["preference"],
            rate=options["rate"],
            limit=limit,
            idle_timeout=options["idle"],
            deadline=time.monotonic() + options["duration"] if options["duration"] else None,
            seed=options["seed"],
        )
        started = time.monotonic()
        stats = run_simulation(run, names)
        result = {**stats.as_dict(), "seconds": round(time.monotonic() - started, 1)}
        self.stdout.write(json.dumps(result))
