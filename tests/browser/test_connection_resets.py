"""Chromium on the labeling page when a connection is reset: the first `next` meets a reset
before the server sees it, and a submit is stored by the server but its answer is cut off by a
reset. The page sends each again at once, without alarming the labeler, and the label is
stored once."""

from __future__ import annotations

import pytest

from labeling.models import Label
from tests.factories import ComparisonFactory, TaskLabelerFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu"]
# Every text the status line and the alert show, recorded as it appears.
WATCH_MESSAGES = """document.addEventListener("DOMContentLoaded", () => {
  window.seenMessages = [];
  for (const id of ["save-status", "alert"]) {
    const el = document.getElementById(id);
    if (!el) continue;
    new MutationObserver(() => window.seenMessages.push(el.textContent)).observe(
      el, {childList: true, characterData: true, subtree: true});
  }
});"""


@pytest.fixture
def page(chromium_path, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS)
        yield browser.new_context().new_page()
        browser.close()


def test_the_page_sends_next_and_submit_again_after_a_reset(live_server, page):
    labeler = UserFactory(username="rita")
    task = TaskLabelerFactory(labeler=labeler, task__k=2).task
    for i in range(3):
        ComparisonFactory(task=task, prompt__text=f"Prompt number {i}")
    calls = {"next": 0, "labels": 0}

    def reset_first_next(route):
        calls["next"] += 1
        if calls["next"] == 1:
            route.abort("connectionreset")  # the server never saw it
        else:
            route.continue_()

    def reset_first_answer(route):
        calls["labels"] += 1
        if calls["labels"] == 1:
            route.fetch()  # the server stores the label...
            route.abort("connectionreset")  # ...and its answer is lost
        else:
            route.continue_()

    page.add_init_script(WATCH_MESSAGES)
    page.goto(f"{live_server.url}/tasks/{task.pk}/label/")
    page.fill("#id_username", "rita")
    page.fill("#id_password", PASSWORD)
    page.route("**/api/v1/tasks/*/next/", reset_first_next)
    page.route("**/api/v1/labels/", reset_first_answer)
    page.click("button[type=submit]")
    page.wait_for_selector("#samples .sample")
    first = page.inner_text("#prompt-text")

    page.keyboard.press("1")
    page.wait_for_function(
        "prev => document.getElementById('prompt-text').textContent !== prev", arg=first
    )
    assert calls == {"next": 3, "labels": 2}  # each reset call sent again, once
    assert page.is_hidden("#alert")
    seen = page.evaluate("window.seenMessages")
    assert not [m for m in seen if "retrying" in m or "reach" in m], seen
    labels = Label.objects.filter(task=task)
    assert labels.count() == 1 and labels.get().comparison.prompt.text == first
