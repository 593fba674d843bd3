"""Running a training run's body (worker side): in this process, or under torchrun as one
process per GPU (NCCL) or N gloo processes on CPU, as ``TRAINING_PROCESSES`` says.

The Celery task keeps the run: it claimed it, beats its heartbeat (training.worker), reports
its progress and publishes what the body made (training.jobs). The body itself is
``training.ml.launch`` (no Django). Under torchrun this process tails the body's progress,
stops the processes when the run is taken away (reaped) or the task hits its time limit, and
fails the run with the launcher's last lines when a process dies: the next tick schedules a
new run, which resumes from the last PPO checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from training.ml import launch

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.5
STOP_SECONDS = 40
"""How long the launcher may take to stop its processes (it waits up to 30 s for them)."""
LOG, SPEC = "launcher.log", "spec.json"

Event = dict[str, Any]


class RunBodyFailed(RuntimeError):
    """A process of the run's body died or exited with an error."""


def process_count() -> int:
    """``settings.TRAINING_PROCESSES``: a number of processes, or "gpus" (one per visible GPU,
    at least one). One runs the body in the worker's own process."""
    value = str(getattr(settings, "TRAINING_PROCESSES", 1)).strip().lower()
    if value == "gpus":
        import torch

        return max(1, torch.cuda.device_count())
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ImproperlyConfigured(f"TRAINING_PROCESSES must be >= 1 or 'gpus', not {value!r}")
    return count


def run_body(
    spec: dict[str, Any],
    work_dir: Path,
    on_progress: Callable[[Event], None],
    check: Callable[[], None],
    processes: int | None = None,
) -> dict[str, Any]:
    """Run the body that ``spec`` describes (training.ml.launch) and return what it made.
    ``check()`` raises when the run is no longer ours (it is called with every progress event
    and, under torchrun, every half second); ``on_progress`` gets each progress event."""
    processes = process_count() if processes is None else processes
    if processes == 1:

        def progress(event: Event) -> None:
            check()
            on_progress(event)

        return launch.execute(spec, progress)
    return _run_under_torchrun(spec, work_dir, processes, on_progress, check)


def torchrun_command(spec_path: Path, processes: int) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
        "--nproc-per-node", str(processes), "--max-restarts", "0",
        "-m", "training.ml.launch", str(spec_path),
    ]  # fmt: skip


def _run_under_torchrun(
    spec: dict[str, Any],
    work_dir: Path,
    processes: int,
    on_progress: Callable[[Event], None],
    check: Callable[[], None],
) -> dict[str, Any]:
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    spec_path = work_dir / SPEC
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    env = {**os.environ, launch.PARENT_PID: str(os.getpid())}
    started = time.perf_counter()
    with (work_dir / LOG).open("ab") as log:
        proc = subprocess.Popen(
            torchrun_command(spec_path, processes),
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    logger.info("run body under torchrun: %d processes (pid %d), %s", processes, proc.pid, work_dir)
    tail = ProgressTail(work_dir / launch.PROGRESS)
    try:
        while True:
            code = proc.poll()
            for event in tail.read():
                on_progress(event)
            if code is not None:
                break
            check()
            time.sleep(POLL_SECONDS)
    finally:
        if proc.poll() is None:
            stop(proc, work_dir)
    result = work_dir / launch.RESULT
    if code != 0 or not result.is_file():
        raise RunBodyFailed(
            f"{processes} training processes failed (torchrun exit code {code}) after "
            f"{time.perf_counter() - started:.0f} s: {last_lines(work_dir / LOG)}"
        )
    made = json.loads(result.read_text(encoding="utf-8"))
    shutil.rmtree(work_dir, ignore_errors=True)
    return dict(made)


def stop(proc: subprocess.Popen[bytes], work_dir: Path) -> None:
    """Stop torchrun (it stops its processes on SIGTERM); then kill whatever is left."""
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pid_file in work_dir.glob("rank-*.pid"):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text())
            if b"training.ml.launch" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)  # a rank that outlived torchrun


class ProgressTail:
    """The complete JSON lines appended to a file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def read(self) -> list[Event]:
        if not self.path.is_file():
            return []
        with self.path.open("rb") as lines:
            lines.seek(self.offset)
            data = lines.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


def last_lines(path: Path, count: int = 12, width: int = 3000) -> str:
    """The last lines of the launcher's log, errors first looked for (for the run's error)."""
    if not path.is_file():
        return "(no log)"
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    keys = ("error", "exitcode", "signal")
    interesting = [line for line in lines if any(key in line.lower() for key in keys)]
    return " | ".join((interesting or lines)[-count:])[-width:]
