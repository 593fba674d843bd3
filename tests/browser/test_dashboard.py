"""The research dashboard in Chromium: plots render, no JavaScript errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.factories import TaskFactory, UserFactory
from tests.research.factories import populate_task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu"]


def test_dashboard_renders_plots_without_javascript_errors(live_server, chromium_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    task = TaskFactory(name="browser task", agreement_threshold=0.5)
    populate_task(task, preferences={"ann": "copy", "bob": "copy", "rnd": "random"}, comparisons=40)
    staff = UserFactory(username="rita", is_staff=True)
    client = Client()
    client.force_login(staff)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    url = live_server.url + reverse("dashboard:task", args=[task.pk])
    samples_url = live_server.url + reverse("dashboard:samples", args=[task.pk])
    shots = Path(settings.BASE_DIR) / "var" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    # Playwright's sync API runs an event loop in this thread; the ORM work is done above.
    monkeypatch.setitem(os.environ, "DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
        )
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        response = page.goto(url)
        assert response is not None and response.status == 200
        page.wait_for_selector(".js-plotly-plot", timeout=20_000)
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot').length === "
            "document.querySelectorAll('.plot[data-figure]').length",
            timeout=20_000,
        )
        # labels per hour, RM accuracy, PPO, timeline, ended fraction, drift, drift over time
        assert page.locator(".js-plotly-plot").count() == 7
        assert page.locator("#plot-drift .scatterlayer .trace").count() >= 3
        assert page.locator("#agreement-table tr.flagged").count() == 1
        assert "rewards copied from prompt" in page.locator("#drift").inner_text()
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

        page.goto(samples_url + "?a=0&b=1")
        assert page.locator("#side-by-side tbody tr").count() == 3
        page.screenshot(path=str(shots / "dashboard-samples.png"), full_page=True)
        browser.close()
    assert errors == []
