"""The summarization dashboard and sample browser in Chromium: the copying plot renders with
both panels, the flags show, copied spans are marked beside the article; no JavaScript errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tests.browser.test_dashboard import ARGS
from tests.factories import UserFactory
from tests.research.test_summaries import summarization_task

__all__ = ["summarization_task"]  # the fixture, shared with tests/research/test_summaries.py

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_copying_plot_and_marked_samples(
    live_server, chromium_path, monkeypatch, summarization_task
):
    from playwright.sync_api import sync_playwright

    cache.clear()
    task = summarization_task
    client = Client()
    client.force_login(UserFactory(username="rita", is_staff=True))
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    shots = Path(settings.BASE_DIR) / "var" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
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
        page.goto(live_server.url + reverse("dashboard:task", args=[task.pk]))
        page.wait_for_selector("#plot-summaries.js-plotly-plot", timeout=20_000)
        # Copied fraction and ROUGE per version above, the copy coefficient below.
        assert page.locator("#plot-summaries .scatterlayer .trace").count() == 5
        flags = page.locator("#summaries .copy-flag").all_inner_texts()
        assert len(flags) == 4  # labelers overall, ann, bob; the policy copies more
        assert flags[0].startswith("Labelers overall reward copying")
        assert flags[-1].startswith("The policy copies more")
        page.locator("#summaries").screenshot(path=str(shots / "summaries-dashboard.png"))
        page.goto(live_server.url + reverse("dashboard:samples", args=[task.pk]) + "?a=0&b=1")
        assert page.locator("#side-by-side tbody tr").count() == 3
        assert page.locator("#side-by-side mark.copied").count() >= 3
        page.screenshot(path=str(shots / "summaries-samples.png"), full_page=True)
        browser.close()
    assert errors == []
