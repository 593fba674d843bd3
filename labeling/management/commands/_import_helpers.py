"""Shared plumbing of the import commands (thin: the work is in labeling.services.imports)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from labeling.importers import ImportFileError
from labeling.models import Task

PROGRESS_EVERY = 10_000


def get_task(task_id: int) -> Task:
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        raise CommandError(f"Task {task_id} does not exist.")
    return task


def run_import(command: BaseCommand, path: str, work: Callable[[Any, Callable], Any]) -> Any:
    """Open ``path`` in binary mode and run ``work(stream, progress)``; errors become
    CommandError (exit status 1) naming the line."""
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file.")
    last = [0]

    def progress(count: int) -> None:
        if count - last[0] >= PROGRESS_EVERY:
            last[0] = count
            command.stderr.write(f"  {count} rows…")

    try:
        with file.open("rb") as stream:
            return work(stream, progress)
    except ImportFileError as error:
        raise CommandError(f"{path}: {error}. Nothing was imported.") from None
