"""manage.py export_labels --task ID --format paper|pairwise|raw [--out FILE]

Streams JSONL (one query per chunk of labels, bounded memory) to FILE or standard output;
progress goes to standard error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from labeling import exports
from labeling.models import Label, Task


class Command(BaseCommand):
    help = "Export a task's labels as JSONL (paper, pairwise or raw format), streaming."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--task", type=int, required=True, help="task id")
        parser.add_argument("--format", choices=list(exports.FORMATS), default="paper")
        parser.add_argument("--out", default=None, help="output file (default: standard output)")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        task = Task.objects.filter(pk=options["task"]).first()
        if task is None:
            raise CommandError(f"No task with id {options['task']}.")
        fmt = options["format"]
        labels = Label.objects.filter(task=task)
        if fmt != "raw":
            labels = labels.filter(kind=Label.Kind.CHOICE)
        total = labels.count()
        out_path = options["out"]
        if out_path:
            target = Path(out_path)
            if not target.parent.is_dir():
                raise CommandError(f"Directory {target.parent} does not exist.")
            partial = target.with_name(target.name + ".partial")
            with partial.open("w", encoding="utf-8") as stream:
                written = self._write(task, fmt, stream, total, options["quiet"])
            os.replace(partial, target)
        else:
            written = self._write(task, fmt, self.stdout, total, options["quiet"])
        sys.stderr.write(f"exported {written} {fmt} rows from {total} labels of task {task.pk}\n")

    def _write(self, task: Task, fmt: str, stream: Any, total: int, quiet: bool) -> int:
        written = 0
        rows_per_label = task.k - 1 if fmt == "pairwise" else 1
        with tqdm(
            total=total * rows_per_label, unit="row", file=sys.stderr, disable=quiet, mininterval=1
        ) as bar:
            for line in exports.jsonl_lines(exports.FORMATS[fmt](task=task)):
                if hasattr(stream, "_out"):  # Django's OutputWrapper adds its own newline
                    stream.write(line, ending="")
                else:
                    stream.write(line)
                written += 1
                bar.update(1)
        return written
