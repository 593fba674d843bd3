"""bench/loadgen.py, the load generator of bench/load.py: through a server that closes reused
keep-alive connections (tests/keepalive_relay.py) its labelers send calls again and lose no work,
and its summary counts what happened."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from labeling.models import Label
from tests.factories import ComparisonFactory, TaskFactory, TaskLabelerFactory
from tests.keepalive_relay import KeepAliveRaceRelay

pytest.importorskip("aiohttp")
BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench_module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_loadgen_labels_through_reset_connections_and_loses_nothing(live_server, settings):
    loadgen = load_bench_module("loadgen")
    postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    labelers = 2 if postgres else 1  # the live server's in-memory SQLite: one at a time
    task = TaskFactory(k=4, labels_per_comparison=1)
    for i in range(12):
        ComparisonFactory(task=task, prompt__text=f"Prompt {i}")
    tokens = [
        Token.objects.create(user=TaskLabelerFactory(task=task).labeler).key
        for _ in range(labelers)
    ]
    parts = urllib.parse.urlparse(live_server.url)
    with KeepAliveRaceRelay((parts.hostname, parts.port)) as relay:
        now = time.time()
        spec = {
            "base_url": relay.url,
            "task_id": task.pk,
            "tokens": tokens,
            "think_s": 0.0,
            "start_at": now,
            "ramp_s": 0.0,
            "deadline": now + 60,
            "pairs_per_labeler": 4,
        }
        result = asyncio.run(loadgen.run(spec))
        result.update(cpu_s=0.1, wall_s=1.0)
    summary = loadgen.summarize([result], (now, time.time()))

    pairs = 4 * labelers
    assert summary["statuses"].get("submit 201", 0) + summary["statuses"].get("submit 200", 0) == (
        pairs - labelers  # the first pair of each labeler is counted as its warm-up
    )
    assert summary["connection_errors"] == 0 and summary["unanswered"] == []
    # Every call after a labeler's first met a closed connection and was sent again: each
    # submit by the load generator (a GET aiohttp resends once by itself on a reused connection).
    assert relay.counts["unsent"] + relay.counts["lost"] == 2 * pairs - labelers
    assert summary["calls_sent_again"] >= pairs
    accepted = summary["accepted"]
    assert len(accepted) == pairs
    stored = set(Label.objects.filter(task=task).values_list("comparison_id", "id"))
    assert set(accepted) == stored  # each label the client was told of is stored, once
