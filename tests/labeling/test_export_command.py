import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.factories import TaskFactory
from tests.research.factories import populate_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def task():
    task = TaskFactory()
    populate_task(task, preferences={"ann": "copy", "rnd": "random"}, comparisons=12)
    return task


def test_pairwise_export_loads_with_datasets(task, tmp_path, capsys):
    import datasets

    out = tmp_path / "pairs.jsonl"
    call_command("export_labels", "--task", str(task.pk), "--format", "pairwise", "--out", str(out))
    assert "exported 72 pairwise rows from 24 labels" in capsys.readouterr().err
    data = datasets.load_dataset(
        "json", data_files=str(out), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert data.num_rows == 24 * 3
    assert data.column_names == ["prompt", "chosen", "rejected"]
    assert all(row["chosen"] != row["rejected"] for row in data)


def test_paper_and_raw_to_stdout(task):
    stdout = io.StringIO()
    call_command(
        "export_labels", "--task", str(task.pk), "--format", "paper", "--quiet", stdout=stdout
    )
    rows = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert len(rows) == 24
    assert {"comparison_id", "query", "sample0", "sample3", "best"} <= set(rows[0])
    raw = io.StringIO()
    call_command("export_labels", "--task", str(task.pk), "--format", "raw", "--quiet", stdout=raw)
    assert {json.loads(x)["labeler"] for x in raw.getvalue().splitlines()} == {"ann", "rnd"}


def test_bad_arguments_fail_clearly(task, tmp_path):
    with pytest.raises(CommandError, match="No task"):
        call_command("export_labels", "--task", "999999")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("export_labels", "--task", str(task.pk), "--out", str(tmp_path / "no" / "x"))
    with pytest.raises(CommandError):
        call_command("export_labels", "--task", str(task.pk), "--format", "csv")
