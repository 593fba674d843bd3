"""Chromium labels three comparisons with the keyboard on the real page, through the real API,
including a 503 and an offline spell that the page must retry rather than drop."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from labeling.models import Label
from tests.factories import ComparisonFactory, InstructionsFactory, TaskLabelerFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-123"
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu"]


@pytest.fixture
def browser(chromium_path, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def task_with_comparisons():
    labeler = UserFactory(username="lena")
    task = TaskLabelerFactory(labeler=labeler, task__k=3, task__name="Sunny continuations").task
    InstructionsFactory(task=task, text="Choose the continuation that is most positive and fluent.")
    texts = [
        "The morning train pulled into the station and",
        "She opened the old letter slowly, and",
        "After the storm the village",
        "On the last day of summer we",
    ]
    for text in texts:
        ComparisonFactory(
            task=task,
            prompt__text=text,
            samples=[
                f"{text} everyone smiled as the sun came out over the hills.",
                f"{text} nothing much happened for a while, then it rained again.",
                f"{text} a quiet dog wandered past the bakery looking for bread.",
            ],
        )
    return task


def log_in(page, url):
    page.goto(url)
    page.fill("#id_username", "lena")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def wait_for_new_prompt(page, previous: str) -> str:
    page.wait_for_function(
        "prev => { const el = document.getElementById('prompt-text');"
        " return el && el.textContent && el.textContent !== prev; }",
        arg=previous,
    )
    return page.inner_text("#prompt-text")


def test_label_three_comparisons_with_the_keyboard(live_server, browser, task_with_comparisons):
    task = task_with_comparisons
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = f"{live_server.url}/tasks/{task.pk}/label/"
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, url)
    page.wait_for_selector("#samples .sample")
    assert page.url == url
    assert "1 labeled" not in page.inner_text("#progress")
    assert "s skip" in page.inner_text("#help-line")

    # "?" toggles the instructions, one key away.
    page.keyboard.press("?")
    assert page.is_visible("#instructions")
    assert "most positive" in page.inner_text("#instructions")
    page.screenshot(path=str(SCREENSHOTS / "labeling-desktop-instructions.png"), full_page=True)
    page.keyboard.press("?")
    assert not page.is_visible("#instructions")
    page.screenshot(path=str(SCREENSHOTS / "labeling-desktop.png"), full_page=True)

    expected: dict[str, tuple[str, int | None]] = {}

    # 1) key "2", while the server answers the first submit with a 503: retried, not dropped.
    failures = {"left": 1}

    def flaky(route):
        if failures["left"]:
            failures["left"] -= 1
            route.fulfill(status=503, body="busy")
        else:
            route.continue_()

    page.route("**/api/v1/labels/", flaky)
    prompt = page.inner_text("#prompt-text")
    assert [page.inner_text(f'.sample[data-position="{i}"] .sample-key') for i in (1, 2, 3)] == [
        "1",
        "2",
        "3",
    ]
    second = int(page.get_attribute('.sample[data-position="2"]', "data-index"))
    page.keyboard.press("2")
    page.wait_for_function(
        "() => /retrying/.test(document.getElementById('save-status').textContent)"
    )
    expected[prompt] = ("choice", second)
    prompt = wait_for_new_prompt(page, prompt)
    assert page.inner_text("#save-status") == "saved"
    assert "1 labeled" in page.inner_text("#progress")
    page.unroute("**/api/v1/labels/")

    # 2) key "s" skips.
    page.keyboard.press("s")
    expected[prompt] = ("skip", None)
    prompt = wait_for_new_prompt(page, prompt)

    # 3) key "n" while offline: queued in localStorage, shown as retrying, saved once online.
    context.set_offline(True)
    page.keyboard.press("n")
    page.wait_for_function(
        "() => /retrying/.test(document.getElementById('save-status').textContent)"
    )
    queued = page.evaluate("() => Object.values(localStorage).map(v => JSON.parse(v)).flat()")
    assert [entry["kind"] for entry in queued] == ["none"]
    expected[prompt] = ("none", None)
    context.set_offline(False)
    prompt = wait_for_new_prompt(page, prompt)
    assert page.inner_text("#save-status") == "saved"
    assert page.evaluate("() => Object.values(localStorage).join('')") == "[]"

    labels = {
        label.comparison.prompt.text: label
        for label in Label.objects.select_related("comparison__prompt").filter(task=task)
    }
    assert {text: (lb.kind, lb.choice) for text, lb in labels.items()} == expected
    for label in labels.values():
        assert label.labeler.username == "lena"
        assert label.time_spent_ms > 0
        assert label.display_order and len(label.display_order) == 3
    # The chosen display position 2 maps to the stored sample index through display_order.
    chosen = next(lb for lb in labels.values() if lb.kind == "choice")
    assert chosen.display_order[1] == chosen.choice
    assert not errors
    context.close()

    # Phone width: the fourth comparison, big tap targets, nothing wider than the screen.
    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = phone.new_page()
    log_in(page, url)
    page.wait_for_selector("#samples .sample")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    box = page.locator(".sample").first.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] > 300
    page.screenshot(path=str(SCREENSHOTS / "labeling-phone.png"), full_page=True)
    page.goto(f"{live_server.url}/")
    page.screenshot(path=str(SCREENSHOTS / "tasks-phone.png"), full_page=True)
    phone.close()
    assert Label.objects.filter(task=task).count() == 3


def test_login_page_screenshot(live_server, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(f"{live_server.url}/accounts/login/")
    assert page.is_visible("#id_username")
    page.screenshot(path=str(SCREENSHOTS / "login-desktop.png"))
