"""import_prompts / import_comparisons commands."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.models import Comparison, Prompt
from tests.factories import TaskFactory

pytestmark = pytest.mark.django_db


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_import_prompts_jsonl_with_split(tmp_path, capsys):
    task = TaskFactory()
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "a"}, {"text": "b"}])
    call_command("import_prompts", "--task", str(task.pk), path, "--split", "eval")
    assert list(Prompt.objects.values_list("split", flat=True)) == ["eval", "eval"]
    assert "Imported 2 prompts" in capsys.readouterr().out


def test_import_prompts_csv_reports_progress_for_big_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("labeling.management.commands._import_helpers.PROGRESS_EVERY", 1000)
    task = TaskFactory()
    path = tmp_path / "p.csv"
    path.write_text("text\n" + "".join(f"prompt {i}\n" for i in range(2500)))
    call_command("import_prompts", "--task", str(task.pk), str(path))
    assert Prompt.objects.count() == 2500
    err = capsys.readouterr().err
    assert "1000 rows" in err and "2000 rows" in err


def test_import_prompts_error_names_the_line_and_imports_nothing(tmp_path):
    task = TaskFactory()
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "a"}, {"txt": "b"}])
    with pytest.raises(
        CommandError,
        match=r"line 2: unknown field 'txt' \(did you mean 'text'\?\).*Nothing was imported",
    ):
        call_command("import_prompts", "--task", str(task.pk), path)
    assert not Prompt.objects.exists()


def test_import_comparisons(tmp_path, capsys):
    task = TaskFactory(k=2)
    rows = [{"prompt": "p", "samples": ["x", "y"]}, {"prompt": "p", "samples": ["y", "z"]}]
    call_command("import_comparisons", "--task", str(task.pk), write_jsonl(tmp_path / "c", rows))
    assert Comparison.objects.filter(task=task).count() == 2
    assert "Imported 2 comparisons into task" in capsys.readouterr().out


def test_import_comparisons_wrong_k_fails(tmp_path):
    task = TaskFactory(k=4)
    path = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "p", "samples": ["x", "y"]}])
    with pytest.raises(CommandError, match="line 1: expected K=4 samples, got 2"):
        call_command("import_comparisons", "--task", str(task.pk), path)
    assert not Comparison.objects.exists()


def test_missing_task_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(CommandError, match="Task 999 does not exist"):
        call_command("import_prompts", "--task", "999", str(tmp_path / "x.jsonl"))
    task = TaskFactory()
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_prompts", "--task", str(task.pk), str(tmp_path / "x.jsonl"))
    (tmp_path / "x.txt").write_text("a\n")
    with pytest.raises(CommandError, match="unsupported file type"):
        call_command("import_prompts", "--task", str(task.pk), str(tmp_path / "x.txt"))


def test_command_line_exits_nonzero_with_the_line_on_stderr(tmp_path, capsys, monkeypatch):
    """Through manage.py's entry point: a bad file exits with status 1."""
    from django.core.management import execute_from_command_line
    from django.db import connections

    # run_from_argv closes connections afterwards; keep the test's transaction open.
    monkeypatch.setattr(connections, "close_all", lambda: None)

    task = TaskFactory()
    path = write_jsonl(tmp_path / "p.jsonl", [{"text": "a"}, "oops"])
    with pytest.raises(SystemExit) as info:
        execute_from_command_line(["manage.py", "import_prompts", "--task", str(task.pk), path])
    assert info.value.code == 1
    assert "line 2: expected a JSON object" in capsys.readouterr().err
    assert not Prompt.objects.exists()
