"""manage.py import_comparisons --task ID FILE: all or nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from labeling.management.commands._import_helpers import get_task, run_import
from labeling.services.imports import import_comparisons


class Command(BaseCommand):
    help = "Import comparisons (prompt + K samples, JSONL) into a task (all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--task", type=int, required=True, help="task id")
        parser.add_argument("file", help="a .jsonl file")

    def handle(self, *args: Any, **options: Any) -> None:
        task = get_task(options["task"])
        result = run_import(
            self,
            options["file"],
            lambda stream, progress: import_comparisons(
                task=task, stream=stream, progress=progress
            ),
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {result.comparisons_created} comparisons into task {task.pk} "
                f"({result.prompts_created} new prompts)."
            )
        )
