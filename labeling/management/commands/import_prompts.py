"""manage.py import_prompts --task ID FILE [--split eval]: all or nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from labeling.importers import detect_format
from labeling.management.commands._import_helpers import get_task, run_import
from labeling.models import Prompt
from labeling.services.imports import import_prompts


class Command(BaseCommand):
    help = "Import prompts from a JSONL or CSV file into a task (all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--task", type=int, required=True, help="task id")
        parser.add_argument("file", help="a .jsonl or .csv file")
        parser.add_argument(
            "--split",
            choices=Prompt.Split.values,
            default=None,
            help="split for rows that do not name one (default: train)",
        )
        parser.add_argument(
            "--format",
            choices=["jsonl", "csv"],
            default=None,
            help="file format (default: from the file name)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        task = get_task(options["task"])
        path = options["file"]

        def work(stream: Any, progress: Any) -> Any:
            file_format = options["format"] or detect_format(path)
            return import_prompts(
                task=task,
                stream=stream,
                file_format=file_format,
                split=options["split"],
                progress=progress,
            )

        result = run_import(self, path, work)
        self.stdout.write(
            self.style.SUCCESS(f"Imported {result.rows} prompts into task {task.pk}.")
        )
