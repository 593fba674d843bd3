"""Serve the demo: web, Celery workers and beat (and optionally simulated labelers), with
their logs prefixed on one console. Ctrl-C stops everything.

Celery's per-task and banner lines are left out of the console: the workers' own lines (one
per sampling job, reward-model run and PPO chunk) remain. The sampling worker runs at the
training worker's priority: the scheduler already keeps sampling off the CPU while a model
trains unless labelers would run short, and then the comparisons are what people wait for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from research.demo.data import (
    DEMO_TASK_NAME,
    DEMO_USERS,
    SECONDS_PER_LABEL,
    SIMULATED_LABELERS,
)
from research.demo.summarization import SIMULATED_PREFERENCE, SUMMARY_TASK_NAME

QUIET_WORKERS = {
    "CELERY_LOG_LEVEL": "WARNING",  # no line per task received, succeeded or sent by beat
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # no "Loading weights" bars at each model load
    "TQDM_DISABLE": "1",  # nor the GGUF conversion's, the first time the model is loaded
    "TRANSFORMERS_VERBOSITY": "error",
}
"""The workers' environment: their own INFO lines stay (one per sampling job, reward-model
run and PPO chunk); Celery's and transformers' routine lines go."""
ROOT_WARNING = "ignore:You're running the worker with superuser privileges"
"""Celery warns at every start as root, even with C_FORCE_ROOT set; `make demo` often runs as
root (a container, a fresh VM). The demo's workers accept JSON only, so the pickle attack the
warning is about does not apply; production images run workers as an unprivileged user."""


def drop_queued_messages() -> int:
    """Delete the messages a stopped demo left in the filesystem broker's folder; returns how
    many. They name rows of whatever database the demo had then (a fresh one reuses the ids),
    and the workers would run them all before the new demo's first job (the summarization
    demo's v0 eval answers waited behind 60 stale sampling jobs). Nothing is lost: the loop's
    tick enqueues again whatever is due, and every job is idempotent."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    folder = options.get("data_folder_in")
    if not settings.CELERY_BROKER_URL.startswith("filesystem://") or not folder:
        return 0
    stale = list(Path(folder).glob("*.msg"))
    for message in stale:
        message.unlink(missing_ok=True)
    return len(stale)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


class Command(BaseCommand):
    help = "Run web, worker(s), beat and optionally simulated labelers for the demo task."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument(
            "--task",
            choices=["continuation", "summarization"],
            default=os.environ.get("DEMO_TASK") or "continuation",
            help="which demo task (default: $DEMO_TASK, else continuation)",
        )
        parser.add_argument(
            "--simulate",
            choices=["none", "sentiment", "length", "copy", "novelty", "random"],
            default=os.environ.get("DEMO_SIMULATE") or None,
            help="start simulated labelers with this preference (none: only people label; "
            "default: sentiment, or copy for the summarization demo)",
        )
        parser.add_argument("--simulated-labelers", type=int, default=SIMULATED_LABELERS)
        parser.add_argument(
            "--seconds-per-label",
            type=float,
            default=float(os.environ.get("DEMO_SECONDS_PER_LABEL", SECONDS_PER_LABEL)),
            help="each simulated labeler's pace (a person's: a few seconds per label)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from labeling.models import Task

        summarization = options["task"] == "summarization"
        name = SUMMARY_TASK_NAME if summarization else DEMO_TASK_NAME
        task = Task.objects.filter(name=name).first()
        if task is None:
            self.stderr.write(f"No demo task: run `manage.py load_demo --task {options['task']}`.")
            sys.exit(1)
        if options["simulate"] is None:
            options["simulate"] = SIMULATED_PREFERENCE if summarization else "sentiment"
        url = f"http://{options['host']}:{options['port']}"
        python = sys.executable
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        host_port = f"{options['host']}:{options['port']}"
        web_env = {"GUNICORN_ACCESS_LOG": "", **env}  # no line per request
        warning_filters = ["ignore::FutureWarning"]  # libraries' deprecation notices
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            warning_filters.append(ROOT_WARNING)
        # Torch threads that wait passively, and one for sampling: with the sampling and the
        # training worker both at full width on 2 cores, OpenMP's spinning threads slowed a
        # summarization PPO batch more than tenfold (no batch of 32 episodes in 16 minutes).
        celery_env = {
            **env, **QUIET_WORKERS, "PYTHONWARNINGS": ",".join(warning_filters),
            "OMP_WAIT_POLICY": "PASSIVE",
        }  # fmt: skip
        sample_env = {**celery_env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        celery = [python, "-m", "celery", "-A", "config", "--quiet"]
        worker = [*celery, "worker", "--loglevel", "INFO", "--concurrency", "1",
                  "--without-gossip", "--without-mingle"]  # fmt: skip
        gunicorn = [python, "-m", "gunicorn", "config.wsgi:application"]
        commands: list[tuple[str, list[str], dict[str, str]]] = [
            ("web", [*gunicorn, "-c", "config/gunicorn.conf.py", "--bind", host_port,
                     "--workers", str(options["web_workers"])], web_env),
            # Light work (ticks, heartbeats) stays responsive while the other worker trains.
            ("worker-light", [*worker, "-Q", "default", "-n", "light@%h"], celery_env),
            # Sampling has its own worker so labelers get new comparisons while a model trains.
            ("worker-sample", [*worker, "-Q", "sampling", "-n", "sample@%h"], sample_env),
            ("worker-train", [*worker, "-Q", "training", "-n", "train@%h"], celery_env),
            ("beat", [*celery, "beat", "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME],
             celery_env),
        ]  # fmt: skip
        if dropped := drop_queued_messages():
            self.stdout.write(f"Dropped {dropped} queued jobs left by an earlier demo.")
        children = [self._start(name, cmd, child_env) for name, cmd, child_env in commands]
        if not self._wait_until_serving(url, children[0]):
            self._supervise(children, stop_now=True)
            sys.exit(1)
        if options["simulate"] != "none":
            simulate = [python, "manage.py", "simulate_labelers", "--task", str(task.pk)]
            simulate += ["--labelers", str(options["simulated_labelers"])]
            rate = 1 / options["seconds_per_label"] if options["seconds_per_label"] > 0 else 0
            simulate += ["--preference", options["simulate"], "--rate", f"{rate:.4f}"]
            simulate += ["--url", url, "--until-budget", "--idle", str(24 * 3600)]
            children.append(self._start("simulated", simulate, env))
        self._banner(url, task.pk, options["simulate"], options["seconds_per_label"])
        self._supervise(children)

    def _wait_until_serving(self, url: str, web: Child, timeout: float = 90.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if web.process.poll() is not None:
                self.stderr.write(f"The web server exited with code {web.process.returncode}.")
                return False
            try:
                with urllib.request.urlopen(f"{url}/healthz?live=1", timeout=2):
                    return True
            except OSError:
                time.sleep(0.5)
        self.stderr.write(f"The web server did not answer at {url} within {timeout:.0f} s.")
        return False

    def _start(self, name: str, cmd: list[str], env: dict[str, str]) -> Child:
        process = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        threading.Thread(target=self._pump, args=(name, process), daemon=True).start()
        return Child(name, process)

    def _pump(self, name: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.stdout.write(f"[{name:12}] {line}")

    def _banner(self, url: str, task_id: int, simulate: str, seconds_per_label: float) -> None:
        lines = [
            "",
            "Preference Loop demo is starting.",
            f"  Labeling page : {url}/",
            f"  Dashboard     : {url}/research/tasks/{task_id}/",
            f"  Admin         : {url}/admin/",
            f"  API docs      : {url}/api/docs/",
            "  Logins:",
        ]
        for user in DEMO_USERS:
            lines.append(f"    {user.username:12} / {user.password:22} ({user.role})")
        if simulate != "none":
            lines.append(
                f"  Simulated labelers prefer: {simulate}, one label per {seconds_per_label:g} s"
                " each (DEMO_SIMULATE=none: people only; DEMO_SECONDS_PER_LABEL sets the pace)"
            )
        lines.append("  Ctrl-C stops everything.")
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))

    def _supervise(self, children: list[Child], stop_now: bool = False) -> None:
        stopping = stop_now

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping:
            for child in children:
                code = child.process.poll()
                if code is not None and not (child.name == "simulated" and code == 0):
                    self.stderr.write(f"{child.name} exited with code {code}; stopping the demo.")
                    stopping = True
            time.sleep(0.5)
        for child in children:
            if child.process.poll() is None:
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
        self.stdout.write("Demo stopped.")
