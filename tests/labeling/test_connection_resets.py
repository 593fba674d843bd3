"""The keep-alive reset race, reproduced: a server closes a keep-alive connection just as the
client reuses it. Simulated labelers send the request again and lose no work: every label the
run counts is stored once, no comparison is leased or labeled beyond its overlap."""

from __future__ import annotations

import urllib.parse

import pytest
import requests
from django.db.models import Count, F

from labeling.models import Assignment, Label
from labeling.simulation import RunOptions, ensure_simulated_labelers, run_simulation
from tests.factories import ComparisonFactory, TaskFactory
from tests.keepalive_relay import KeepAliveRaceRelay


def upstream_of(live_server) -> tuple[str, int]:
    parts = urllib.parse.urlparse(live_server.url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def test_the_relay_reproduces_the_race_a_client_without_retries_loses(live_server):
    with KeepAliveRaceRelay(upstream_of(live_server)) as relay, requests.Session() as session:
        assert session.get(f"{relay.url}/healthz?live=1", timeout=10).status_code == 200
        # The same connection, reused: closed with no response, as in the 1,000-labeler run.
        with pytest.raises(requests.ConnectionError, match=r"without response|reset|aborted"):
            session.get(f"{relay.url}/healthz?live=1", timeout=10)
    assert relay.counts["unsent"] == 1


@pytest.mark.slow
def test_simulated_labelers_lose_no_work_to_reset_connections(live_server, settings):
    # The live server shares one in-memory SQLite connection between threads: one labeler there.
    postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    labelers = 3 if postgres else 1
    task = TaskFactory(k=3, labels_per_comparison=1)
    for i in range(12):
        ComparisonFactory(task=task, prompt__text=f"Prompt {i}")
    names = ensure_simulated_labelers(task=task, count=labelers)

    with KeepAliveRaceRelay(upstream_of(live_server)) as relay:
        options = RunOptions(base_url=relay.url, task_id=task.pk, preference="random", limit=10)
        stats = run_simulation(options, names)

    # Every reuse of a connection was dropped, half of them after the server had done the work
    # (a lease taken, a label stored) and the answer was lost.
    assert relay.counts["unsent"] >= 5 and relay.counts["lost"] >= 5
    assert stats.reconnects == relay.counts["unsent"] + relay.counts["lost"]
    assert stats.errors == 0 and stats.labels == 10
    labels = Label.objects.filter(task=task)
    assert labels.count() == 10  # nothing lost, nothing stored twice
    assert labels.values("comparison").distinct().count() == 10
    over_leased = (
        Assignment.objects.filter(task=task, state__in=["active", "submitted"])
        .values("comparison_id")
        .annotate(n=Count("id"), overlap=F("comparison__overlap"))
        .filter(n__gt=F("overlap"))
    )
    assert not over_leased.exists()
    # Each stored label's lease was submitted: no label on a comparison that was not leased.
    assert Assignment.objects.filter(task=task, state="submitted").count() == 10
