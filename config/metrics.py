"""/metrics: Prometheus exposition computed at scrape time by a custom collector.

A handful of aggregate queries per scrape (labels per task, active leases, open comparisons,
training runs by state, the latest metrics of each task's newest run and versions) plus one
Redis LLEN per Celery queue. Nothing is counted in the request path, so the numbers are the
same whichever web process is scraped. If the env var METRICS_TOKEN is set, the scrape must
send `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import math
import os
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "preferenceloop"


def celery_queue_names() -> list[str]:
    names = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")}
    for route in getattr(settings, "CELERY_TASK_ROUTES", {}).values():
        if isinstance(route, dict) and route.get("queue"):
            names.add(route["queue"])
    return sorted(names)


def queue_lengths() -> dict[str, int] | None:
    """LLEN of each Celery queue on a Redis broker; None for other brokers or Redis down."""
    url: str = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        pipe = client.pipeline(transaction=False)
        names = celery_queue_names()
        for name in names:
            pipe.llen(name)
        return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))
    except redis.RedisError:
        return None
    finally:
        client.close()


def _numeric_items(metrics: Any) -> Iterator[tuple[str, float]]:
    if not isinstance(metrics, dict):
        return
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            yield str(key), float(value)


class PreferenceLoopCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        from labeling.models import Assignment, Comparison, Label, Task
        from training.models import PolicyVersion, RewardModelVersion, TrainingRun

        names = dict(Task.objects.values_list("id", "name"))

        def task_labels(task_id: int) -> list[str]:
            return [str(task_id), names.get(task_id, "")]

        labels = CounterMetricFamily(
            f"{PREFIX}_labels", "Labels stored, per task and kind", labels=["task", "name", "kind"]
        )
        for row in Label.objects.values("task_id", "kind").annotate(n=Count("id")).order_by():
            labels.add_metric([*task_labels(row["task_id"]), row["kind"]], row["n"])
        yield labels

        leases = GaugeMetricFamily(
            f"{PREFIX}_active_leases", "Unexpired active leases", labels=["task", "name"]
        )
        active = Assignment.objects.filter(
            state=Assignment.State.ACTIVE, expires_at__gt=timezone.now()
        )
        for lease_row in active.values("task_id").annotate(n=Count("id")).order_by():
            leases.add_metric(task_labels(lease_row["task_id"]), lease_row["n"])
        yield leases

        comparisons = GaugeMetricFamily(
            f"{PREFIX}_open_comparisons", "Comparisons still open", labels=["task", "name"]
        )
        open_rows = Comparison.objects.filter(status=Comparison.Status.OPEN)
        for open_row in open_rows.values("task_id").annotate(n=Count("id")).order_by():
            comparisons.add_metric(task_labels(open_row["task_id"]), open_row["n"])
        yield comparisons

        runs = GaugeMetricFamily(
            f"{PREFIX}_training_runs",
            "Training runs by kind and status",
            labels=["task", "name", "kind", "status"],
        )
        run_rows = TrainingRun.objects.values("task_id", "kind", "status").annotate(n=Count("id"))
        for row in run_rows.order_by():
            runs.add_metric([*task_labels(row["task_id"]), row["kind"], row["status"]], row["n"])
        yield runs

        step = GaugeMetricFamily(
            f"{PREFIX}_training_step_metric",
            "Latest step metrics of each task's newest run per kind (e.g. loss, kl, accuracy)",
            labels=["task", "name", "kind", "metric"],
        )
        newest = TrainingRun.objects.values("task_id", "kind").annotate(last=Max("id")).order_by()
        newest_ids = [row["last"] for row in newest]
        for run in TrainingRun.objects.filter(id__in=newest_ids).only("task_id", "kind", "metrics"):
            series = run.metrics if isinstance(run.metrics, list) else [run.metrics]
            latest = series[-1] if series else {}
            for key, value in _numeric_items(latest):
                step.add_metric([*task_labels(run.task_id), run.kind, key], value)
        yield step

        for model, kind in ((RewardModelVersion, "reward"), (PolicyVersion, "policy")):
            family = GaugeMetricFamily(
                f"{PREFIX}_{kind}_version_metric",
                f"Metrics of each task's newest {kind} version (e.g. accuracy, kl, reward)",
                labels=["task", "name", "version", "metric"],
            )
            last = model.objects.values("task_id").annotate(last=Max("id")).order_by()
            ids = [row["last"] for row in last]
            for version in model.objects.filter(id__in=ids).only("task_id", "number", "metrics"):
                for key, value in _numeric_items(version.metrics):
                    family.add_metric(
                        [*task_labels(version.task_id), str(version.number), key], value
                    )
            yield family

        queues = queue_lengths()
        depth = GaugeMetricFamily(
            f"{PREFIX}_celery_queue_length", "Messages waiting per Celery queue", labels=["queue"]
        )
        for name, length in (queues or {}).items():
            depth.add_metric([name], length)
        yield depth
        yield GaugeMetricFamily(
            f"{PREFIX}_broker_up", "1 when the broker answered LLEN", value=int(queues is not None)
        )


def render_metrics() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PreferenceLoopCollector())
    return generate_latest(registry)


def _authorized(request: HttpRequest) -> bool:
    token = os.environ.get("METRICS_TOKEN") or getattr(settings, "METRICS_TOKEN", "")
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse("metrics need a bearer token\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
