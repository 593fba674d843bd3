"""Staff-only research pages: task dashboard, sample browser, exports. Thin: selectors and
figures do the work."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from labeling import exports
from labeling.models import Task
from research import figures, selectors
from research.finders import PLOTLY_STATIC_PATH
from research.loop_status import loop_status
from research.summaries import article_rows, copying_flags, summary_stats
from training.models import PolicyVersion

View = Callable[..., HttpResponseBase]


def staff_required(view: View) -> View:
    """Anonymous users go to the login page; signed-in non-staff get 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not getattr(request.user, "is_staff", False):
            raise PermissionDenied("The research dashboard is for researchers (staff users).")
        return view(request, *args, **kwargs)

    return wrapper


@require_GET
@staff_required
def index(request: HttpRequest) -> HttpResponse:
    tasks = Task.objects.annotate(label_total=Count("labels")).order_by("id")
    return render(request, "dashboard/index.html", {"tasks": tasks})


@require_GET
@staff_required
def task_dashboard(request: HttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(Task, pk=task_id)
    rms = selectors.reward_model_versions(task=task)
    policies = selectors.policy_versions(task=task)
    agreement, rm = selectors.task_agreement(task=task)
    drift = selectors.task_drift(task=task)
    drift_dict = drift.as_dict()
    summarization = task.kind == Task.Kind.SUMMARIZATION
    summary_rows = summary_stats(task=task) if summarization else []
    median_ms = selectors.median_time_ms(task=task)
    plots = {
        "labels_per_hour": figures.labels_per_hour(
            selectors.labels_per_hour(task=task, now=timezone.now())
        ),
        "rm_accuracy": figures.reward_model_accuracy(rms, k=task.k),
        "ppo": figures.ppo_curves(selectors.ppo_metrics(task=task)),
        "timeline": figures.version_timeline(rms, policies),
        "ended": figures.ended_fraction(selectors.ended_fractions(task=task)),
        "drift": figures.drift_coefficients(drift),
        "drift_time": figures.drift_over_time(drift),
        "summaries": figures.summary_copying(summary_rows, drift) if summarization else None,
    }
    context = {
        "task": task,
        "plots": plots,
        "plotly_js": PLOTLY_STATIC_PATH,
        "activity": selectors.labeler_activity(task=task),
        "median_ms": median_ms,
        "median_s": median_ms / 1000 if median_ms is not None else None,
        "schedule": selectors.schedule_state(task=task),
        "selection": selectors.selection_summary(task=task),
        "loop": loop_status(task=task),
        "reward_models": rms,
        "policies": policies,
        "agreement": agreement,
        "current_rm": rm,
        "previous_rm": selectors.last_prospectively_scored(versions=rms),
        "drift": drift_dict,
        "drift_groups": [
            g
            for g in [drift_dict["overall"], *drift_dict["per_labeler"], *drift_dict["windows"]]
            if g
        ],
        "export_formats": list(exports.FORMATS),
        "summarization": summarization,
        "summary_rows": summary_rows,
        "copy_flags": copying_flags(summary_rows, drift) if summarization else [],
    }
    return render(request, "dashboard/task.html", context)


def _version(task: Task, raw: str | None, default: PolicyVersion | None) -> PolicyVersion | None:
    if raw in (None, ""):
        return default
    try:
        number = int(raw)
    except ValueError:
        return None
    return PolicyVersion.objects.filter(task=task, number=number).first()


@require_GET
@staff_required
def sample_browser(request: HttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(Task, pk=task_id)
    versions = selectors.policy_versions(task=task)
    context: dict[str, Any] = {"task": task, "versions": versions, "rows": []}
    if not versions:
        return render(request, "dashboard/samples.html", context)
    a = _version(task, request.GET.get("a"), versions[0])
    b = _version(task, request.GET.get("b"), versions[-1])
    if a is None or b is None:
        context["error"] = "Choose two policy versions of this task (by their numbers)."
        return render(request, "dashboard/samples.html", context, status=400)
    rows = selectors.side_by_side(a=a, b=b)
    if task.kind == Task.Kind.SUMMARIZATION:
        context["article_rows"] = article_rows(rows, task.query_template)
    context.update(
        a=a,
        b=b,
        rows=rows,
        mean_a=selectors.mean_reward(rows, "a"),
        mean_b=selectors.mean_reward(rows, "b"),
    )
    return render(request, "dashboard/samples.html", context)


@require_GET
@staff_required
def export(request: HttpRequest, task_id: int, fmt: str) -> HttpResponseBase:
    task = get_object_or_404(Task, pk=task_id)
    if fmt not in exports.FORMATS:
        known = ", ".join(exports.FORMATS)
        return HttpResponse(f"Unknown export format {fmt!r}; use one of: {known}.", status=400)
    return exports.jsonl_response(task=task, export_format=fmt)
