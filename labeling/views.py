"""Labeler pages: the task list and the labeling page (its JavaScript talks to the API)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from labeling import selectors


@login_required
def home(request: HttpRequest) -> HttpResponse:
    tasks = selectors.task_list_for_user(user=request.user)
    return render(request, "labeling/home.html", {"tasks": tasks})


@login_required
@ensure_csrf_cookie
def label_task(request: HttpRequest, task_id: int) -> HttpResponse:
    task = selectors.get_labeling_task(user=request.user, task_id=task_id)
    if task is None:
        raise Http404("No such task for you.")
    instructions = selectors.current_instructions(task_id=task.pk)
    return render(
        request,
        "labeling/label.html",
        {"task": task, "instructions": instructions, "keys": list(range(1, task.k + 1))},
    )
