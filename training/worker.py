"""Who a worker is, the heartbeat of the run it trains, and its database connection across
minutes of training (worker side; no torch)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import close_old_connections, connection

from training import services


class RunLost(Exception):
    """The run is no longer ours (reaped as stale): stop without publishing."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def refresh_db() -> None:
    """After minutes of training the database connection may have gone stale: drop it (not
    inside a transaction, e.g. a test's)."""
    if not connection.in_atomic_block:
        close_old_connections()


@contextmanager
def heartbeating(run_id: int, every: float | None = None) -> Iterator[Callable[[], None]]:
    """Beat the run's heartbeat from a thread while the body runs; the yielded ``check()``
    raises RunLost once the run was taken away (reaped)."""
    every = every or float(getattr(settings, "TRAINING_HEARTBEAT_SECONDS", 15))
    stop = threading.Event()
    lost = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                if not services.heartbeat(run_id=run_id):
                    lost.set()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()

    def check() -> None:
        if lost.is_set():
            raise RunLost(f"run {run_id} is no longer running")

    try:
        yield check
    finally:
        stop.set()
        thread.join(timeout=5)
