"""Chromium labels summaries of a 600-word article at desktop and phone widths: the article
scrolls in its own pane (beside the summaries, or above them on a phone) while the summaries
stay in view, the copied spans are marked, and the keys work as on every task."""

from __future__ import annotations

import pytest

from labeling.models import Label, Task
from tests.browser.test_labeling_page import PASSWORD, SCREENSHOTS, browser, log_in
from tests.factories import ComparisonFactory, InstructionsFactory, TaskLabelerFactory, UserFactory

__all__ = ["browser"]  # the fixture, shared with test_labeling_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SENTENCES = [
    "The city council voted on Tuesday to approve a new bridge across the river.",
    "The project has been debated for more than a decade by residents and engineers.",
    "Supporters say the bridge will cut travel times and bring trade to the old port.",
    "Opponents worry about the cost, the noise and the loss of the riverside park.",
    "Construction is expected to begin in the spring and to last about three years.",
    "The mayor said the vote was a turning point for the region and its economy.",
]


def article_of_600_words() -> str:
    words: list[str] = []
    paragraphs = []
    i = 0
    while len(words) < 600:
        paragraph = " ".join(SENTENCES[(i + j) % len(SENTENCES)] for j in range(4))
        paragraphs.append(f"Paragraph {i + 1}. {paragraph}")
        words.extend(paragraphs[-1].split())
        i += 1
    return "\n\n".join(paragraphs)


SUMMARIES = [
    "The city council voted on Tuesday to approve a new bridge across the river.",
    "A long-debated bridge was approved; building starts in spring.",
    "Residents disagree about a costly new crossing near the park.",
    "\U0001f309 The mayor said the vote was a turning point.",  # a character beyond UTF-16's BMP
]


@pytest.fixture
def summarization_task():
    UserFactory(username="lena", password=PASSWORD)
    task = TaskLabelerFactory(
        labeler__username="lena",
        task__name="Bridge summaries",
        task__kind=Task.Kind.SUMMARIZATION,
        task__k=4,
        task__highlight_copies=True,
    ).task
    InstructionsFactory(task=task, text="Pick the summary that best covers the article.")
    article = article_of_600_words()
    assert len(article.split()) >= 600
    for n in range(2):
        ComparisonFactory(
            task=task,
            prompt__text=f"{article}\n\nStory {n}.\n\nTL;DR:",
            samples=SUMMARIES,
        )
    return task


def summaries_in_view(page) -> bool:
    return page.evaluate(
        """() => [...document.querySelectorAll('#samples .sample')].every(el => {
            const r = el.getBoundingClientRect();
            return r.top >= 0 && r.bottom <= window.innerHeight + 1;
        })"""
    )


def check_article_pane(page) -> None:
    pane = page.locator("#prompt-text")
    assert "Paragraph 1." in pane.inner_text() and "TL;DR" not in pane.inner_text()
    sizes = page.evaluate(
        "() => { const el = document.getElementById('prompt-text');"
        " return [el.scrollHeight, el.clientHeight]; }"
    )
    assert sizes[0] > 2 * sizes[1]  # the article scrolls inside its pane
    window_scroll = page.evaluate("() => window.scrollY")
    pane.hover()
    page.mouse.wheel(0, 1500)
    page.wait_for_function("() => document.getElementById('prompt-text').scrollTop > 300")
    assert page.evaluate("() => window.scrollY") == window_scroll  # the page did not move
    # Copied spans are marked in the summary that copied a sentence, nowhere else.
    marks = page.locator("#samples mark.copied")
    assert marks.count() >= 1
    marked = [marks.nth(i).inner_text() for i in range(marks.count())]
    assert SUMMARIES[0].rstrip(".") in marked
    assert "The mayor said the vote was a turning point" in marked  # after the emoji
    assert page.is_visible("#copy-legend")


def test_desktop_article_beside_the_summaries(live_server, browser, summarization_task):
    task = summarization_task
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = f"{live_server.url}/tasks/{task.pk}/label/"
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, url)
    page.wait_for_selector("#samples .sample")
    article = page.locator("#article").bounding_box()
    first = page.locator(".sample").first.bounding_box()
    assert article and first and article["x"] + article["width"] <= first["x"]  # side by side
    assert summaries_in_view(page)
    check_article_pane(page)
    assert summaries_in_view(page)
    page.screenshot(path=str(SCREENSHOTS / "summarization-desktop.png"))
    page.keyboard.press("?")
    assert "best covers" in page.inner_text("#instructions")
    page.keyboard.press("Escape")
    chosen = int(page.get_attribute('.sample[data-position="1"]', "data-index"))
    page.keyboard.press("1")
    page.wait_for_function("() => document.getElementById('save-status').textContent === 'saved'")
    label = Label.objects.get(task=task)
    assert (label.kind, label.choice, label.copies_highlighted) == ("choice", chosen, True)
    assert not errors


def test_phone_article_above_the_summaries(live_server, browser, summarization_task):
    task = summarization_task
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    log_in(page, f"{live_server.url}/tasks/{task.pk}/label/")
    page.wait_for_selector("#samples .sample")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    article = page.locator("#article").bounding_box()
    first = page.locator(".sample").first.bounding_box()
    assert article and first and article["y"] + article["height"] <= first["y"]  # above
    assert article["height"] < 0.5 * 844  # a pane, not the whole 600 words
    check_article_pane(page)
    page.screenshot(path=str(SCREENSHOTS / "summarization-phone.png"), full_page=True)
    page.keyboard.press("s")
    page.wait_for_function("() => document.getElementById('save-status').textContent === 'saved'")
    assert Label.objects.get(task=task).kind == "skip"
    context.close()
