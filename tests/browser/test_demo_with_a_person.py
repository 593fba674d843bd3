"""The demo as a newcomer meets it, in Chromium against the live server: the demo task with its
simulated labelers at their human pace, alice labeling beside them within the first minute,
then the researcher's dashboard with live agreement figures (alpha, kappa, peer and gold
accuracy); and the API docs rendering with no network at all."""

from __future__ import annotations

import re
import threading
import time
from urllib.parse import urlparse

import pytest
from django.core.management import call_command

from labeling.models import Label, Task
from labeling.simulation import RunOptions, ensure_simulated_labelers, run_simulation
from research.demo.data import DEMO_TASK_NAME, DEMO_USERS, SECONDS_PER_LABEL, SIMULATED_LABELERS

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu"]
PASSWORDS = {user.username: user.password for user in DEMO_USERS}
ALICE_MAX_LABELS = 30


@pytest.fixture
def browser(chromium_path, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS)
        yield browser
        browser.close()


def offline_context(browser, live_url: str):
    """A browser context that can reach the live server and nothing else."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    server = urlparse(live_url).netloc
    blocked: list[str] = []

    def only_the_server(route):
        if urlparse(route.request.url).netloc == server:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    return context, blocked


def log_in(page, url: str, username: str) -> None:
    page.goto(url)
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORDS[username])
    page.click("button[type=submit]")


def test_a_person_labels_beside_the_simulated_labelers(live_server, browser):
    call_command("load_demo")
    task = Task.objects.get(name=DEMO_TASK_NAME)
    started = time.monotonic()
    # The demo's simulated labelers, as run_demo starts them: its count, preference and pace.
    options = RunOptions(
        base_url=live_server.url,
        task_id=task.pk,
        preference="sentiment",
        rate=1 / SECONDS_PER_LABEL,
        deadline=started + 150,
    )
    bots = ensure_simulated_labelers(task=task, count=SIMULATED_LABELERS)
    simulation = threading.Thread(target=run_simulation, args=(options, bots), daemon=True)
    simulation.start()
    time.sleep(2 * SECONDS_PER_LABEL)  # the bots are under way when alice arrives

    context, blocked = offline_context(browser, live_server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    log_in(page, f"{live_server.url}/tasks/{task.pk}/label/", "alice")
    page.wait_for_selector("#samples .sample", timeout=20_000)
    assert time.monotonic() - started < 60, "alice found no comparison within the first minute"

    # alice labels at a person's pace (faster than the bots) until she has met a gold item
    # and labeled several comparisons the bots labeled too.
    alice = task.labelers.get(username="alice")
    for _ in range(ALICE_MAX_LABELS):
        assert page.is_hidden("#done"), "alice was told there is nothing left"
        prompt = page.inner_text("#prompt-text")
        page.keyboard.press(str(1 + len(prompt) % task.k))
        page.wait_for_function(
            "prev => { const el = document.getElementById('prompt-text');"
            " return el && el.textContent !== prev; }",
            arg=prompt,
            timeout=20_000,
        )
        mine = Label.objects.filter(labeler=alice, task=task)
        shared = mine.filter(comparison__labels__labeler__username__in=bots).distinct()
        if mine.filter(comparison__is_gold=True).exists() and shared.count() >= 3:
            break
        time.sleep(1.5)
    mine = Label.objects.filter(labeler=alice, task=task)
    assert mine.filter(comparison__is_gold=True).exists()
    assert mine.filter(comparison__labels__labeler__username__in=bots).distinct().count() >= 3
    assert time.monotonic() - started < 150
    assert not errors and not missing and not blocked
    context.close()

    # The researcher's dashboard: agreement is live, with numbers, not "n/a".
    context, blocked = offline_context(browser, live_server.url)
    page = context.new_page()
    log_in(page, f"{live_server.url}/research/tasks/{task.pk}/", "researcher")
    page.wait_for_selector("#agreement-table")
    summary = page.inner_text("#agreement p.muted")
    shared_items = int(re.search(r"on (\d+) shared comparison", summary).group(1))
    assert shared_items >= 3
    assert re.search(r"\N{GREEK SMALL LETTER ALPHA} = -?\d\.\d{3}", summary), summary
    assert re.search(r"\N{GREEK SMALL LETTER KAPPA} = -?\d\.\d{3}", summary), summary
    rows = {
        row.get_attribute("data-labeler"): row.inner_text()
        for row in page.query_selector_all("#agreement-table tbody tr")
    }
    assert {"alice", *bots} <= set(rows)
    gold = {name for name, text in rows.items() if re.search(r"\d\.\d\d \(\d+\)", text)}
    assert "alice" in gold  # her gold accuracy (and peer agreement) are figures
    status = page.inner_text("#loop-status")
    assert "Now" in status and "Next" in status and "Reward model v1" in status
    assert not blocked
    options.deadline = time.monotonic()
    simulation.join(timeout=30)
    context.close()


def test_api_docs_render_with_no_network(live_server, browser):
    context, blocked = offline_context(browser, live_server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    statuses: dict[str, int] = {}
    page.on("response", lambda r: statuses.__setitem__(r.url, r.status))
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .information-container .title", timeout=20_000)
    assert "Preference Loop API" in page.inner_text(".swagger-ui .information-container .title")
    page.wait_for_selector(".opblock-summary-path")  # the operations, read from /api/schema/
    paths = page.eval_on_selector_all(
        ".opblock-summary-path", "els => els.map(e => e.getAttribute('data-path'))"
    )
    assert "/api/v1/labels/" in paths
    assert not errors and not blocked
    assert all(status < 400 for status in statuses.values()), statuses
    favicon = page.request.get(f"{live_server.url}/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"] == "image/x-icon"
    context.close()
