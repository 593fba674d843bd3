"""training.launcher: how many processes, the progress tail, and torchrun runs that fail or are
taken away (the 2-process runs through a real Celery worker: tests/e2e/test_distributed_runs)."""

from __future__ import annotations

import json
import os
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from training import launcher
from training.worker import RunLost


@pytest.mark.parametrize(("value", "count"), [("1", 1), (3, 3), (" 2 ", 2)])
def test_process_count_from_settings(settings, value, count):
    settings.TRAINING_PROCESSES = value
    assert launcher.process_count() == count


def test_gpus_means_one_process_per_visible_gpu_and_at_least_one(settings):
    torch = pytest.importorskip("torch")
    settings.TRAINING_PROCESSES = "GPUs"
    assert launcher.process_count() == max(1, torch.cuda.device_count())


@pytest.mark.parametrize("value", ["0", "-2", "all", ""])
def test_bad_process_counts_are_refused(settings, value):
    settings.TRAINING_PROCESSES = value
    with pytest.raises(ImproperlyConfigured, match="TRAINING_PROCESSES"):
        launcher.process_count()


def test_progress_tail_returns_complete_lines_once(tmp_path):
    path = tmp_path / "progress.jsonl"
    tail = launcher.ProgressTail(path)
    assert tail.read() == []  # not written yet
    path.write_text('{"done": 1, "total": 3}\n{"done": 2, "tot')
    assert tail.read() == [{"done": 1, "total": 3}]
    assert tail.read() == []  # the half-written line waits
    with path.open("a") as lines:
        lines.write('al": 3}\n')
    assert tail.read() == [{"done": 2, "total": 3}]


def test_last_lines_prefers_errors(tmp_path):
    log = tmp_path / "launcher.log"
    log.write_text("starting\nValueError: unknown run kind 'x'\nexitcode  : 1\nbye\n")
    assert launcher.last_lines(log) == "ValueError: unknown run kind 'x' | exitcode  : 1"
    assert launcher.last_lines(tmp_path / "missing.log") == "(no log)"


@pytest.mark.slow
def test_a_failing_body_fails_with_the_launcher_error(tmp_path):
    spec = {"kind": "nonsense", "config": {}}
    with pytest.raises(launcher.RunBodyFailed) as failed:
        launcher.run_body(spec, tmp_path / "run", lambda e: None, lambda: None, processes=2)
    message = str(failed.value)
    assert "2 training processes failed (torchrun exit code 1)" in message
    assert "unknown run kind 'nonsense'" in message
    assert (tmp_path / "run" / "launcher.log").is_file()  # kept for the post-mortem


@pytest.mark.slow
def test_a_run_taken_away_stops_its_processes(tiny_model_path, tmp_path):
    """check() raises RunLost once the run was reaped: the launcher stops torchrun and its
    ranks, and the error goes up (the Celery task then gives the run up)."""
    from tests.training.ml.test_launch import reward_spec
    from tests.training.ml.test_reward import synthetic_labels

    spec = reward_spec(tiny_model_path, tmp_path / "rm")
    spec["labels"] = synthetic_labels(5000)  # minutes of training
    work = tmp_path / "run"
    started = time.monotonic()

    def check() -> None:
        if len(list(work.glob("rank-*.pid"))) == 2:  # both ranks are up
            raise RunLost("run 1 is no longer running")

    with pytest.raises(RunLost):
        launcher.run_body(spec, work, lambda e: None, check, processes=2)
    pids = [int(p.read_text()) for p in work.glob("rank-*.pid")]
    assert len(pids) == 2 and time.monotonic() - started < 200
    assert all(gone(pid) for pid in pids)
    assert not (work / "result.json").exists() and not (tmp_path / "rm").exists()
    json.loads((work / "spec.json").read_text())  # what was launched stays for the log


def gone(pid: int, timeout: float = 15) -> bool:
    """The process has exited and been reaped (a zombie still answers signal 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    pytest.importorskip("torch")
    from tests.training.conftest import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("launcher-tiny"))
