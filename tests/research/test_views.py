import json

import pytest
from django.core.cache import cache
from django.urls import reverse

from research.finders import PLOTLY_STATIC_PATH
from tests.factories import TaskFactory, UserFactory
from tests.research.factories import populate_task

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="rita", is_staff=True))
    return client


@pytest.fixture
def busy_task():
    task = TaskFactory(agreement_threshold=0.5)
    populate_task(task, preferences={"ann": "copy", "bob": "copy", "rnd": "random"}, comparisons=60)
    return task


def _urls(task):
    return [
        reverse("dashboard:index"),
        reverse("dashboard:task", args=[task.pk]),
        reverse("dashboard:samples", args=[task.pk]),
        reverse("dashboard:export", args=[task.pk, "raw"]),
    ]


def test_labelers_are_forbidden_and_anonymous_users_sent_to_login(client):
    task = TaskFactory()
    for url in _urls(task):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    client.force_login(UserFactory(username="lou"))
    for url in _urls(task):
        assert client.get(url).status_code == 403


def test_empty_task_renders_deliberate_empty_states(staff_client):
    task = TaskFactory(name="fresh task")
    response = staff_client.get(reverse("dashboard:task", args=[task.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "No reward model yet" in html
    assert "No PPO training yet" in html
    assert "No best-of-4 labels yet" in html
    assert "No comparisons sampled yet" in html
    assert 'data-figure="' not in html  # no plot without data
    samples = staff_client.get(reverse("dashboard:samples", args=[task.pk]))
    assert samples.status_code == 200 and b"No policy versions yet" in samples.content
    index = staff_client.get(reverse("dashboard:index"))
    assert b"fresh task" in index.content


def test_dashboard_with_data_shows_plots_agreement_and_drift(staff_client, busy_task):
    with_queries = staff_client.get(reverse("dashboard:task", args=[busy_task.pk]))
    assert with_queries.status_code == 200
    html = with_queries.content.decode()
    for name in ["labels-per-hour", "rm-accuracy", "ppo", "timeline", "drift", "drift-time"]:
        assert f'data-figure="fig-{name}"' in html, name
    assert PLOTLY_STATIC_PATH in html
    figure = with_queries.context["plots"]["rm_accuracy"]
    prospective, held_out = figure["data"]  # the accuracy that counts online comes first
    assert prospective["name"].startswith("prospective") and prospective["y"] == [0.5]
    assert held_out["y"] == [0.55, 0.68] and held_out["x"] == [60, 120]
    assert figure["layout"]["shapes"][0]["y0"] == 0.25  # chance at K = 4
    assert "v1 scored 0.500 on the 60 labels after it" in html
    agreement = with_queries.context["agreement"]
    assert agreement.labelers[-1].labeler == "rnd" and agreement.labelers[-1].flagged
    assert not any(s.flagged for s in agreement.labelers[:-1])
    drift = with_queries.context["drift"]
    assert {g["key"]: g["dominant"] for g in drift["per_labeler"]} == {
        "ann": "copy",
        "bob": "copy",
        "rnd": None,
    }
    assert "ann rewards copied from prompt" in html
    schedule = with_queries.context["schedule"]
    assert schedule.label_count == 180 and schedule.episodes_done == 512

    # The fraction of sampled responses that ended, per policy version: plot and column.
    assert 'data-figure="fig-ended"' in html
    ended = with_queries.context["plots"]["ended"]["data"][0]
    assert ended["x"] == ["v0", "v1"]
    assert ended["y"] == [pytest.approx(328 / 960), pytest.approx(0.75)]
    assert ended["customdata"] == [[328, 960], [480, 640]]
    versions = html[html.index('id="policy-versions"') :]
    assert '34% <span class="muted">(328/960)</span>' in versions
    assert '75% <span class="muted">(480/640)</span>' in versions


def test_dashboard_computation_is_cached_until_a_new_label(
    staff_client, busy_task, django_assert_max_num_queries
):
    url = reverse("dashboard:task", args=[busy_task.pk])
    staff_client.get(url)
    with django_assert_max_num_queries(26):  # 25, and 1 for the selection card
        assert staff_client.get(url).status_code == 200


def test_sample_browser_side_by_side(staff_client, busy_task):
    url = reverse("dashboard:samples", args=[busy_task.pk])
    response = staff_client.get(url, {"a": 0, "b": 1})
    assert response.status_code == 200
    html = response.content.decode()
    assert "base answer 2" in html and "tuned answer 2" in html
    assert html.count("did not end") == 1  # v0's first eval sample
    assert response.context["mean_a"] == pytest.approx(-0.2)
    assert response.context["mean_b"] == pytest.approx(0.9)
    assert staff_client.get(url, {"a": "x"}).status_code == 400
    assert staff_client.get(url, {"a": 0, "b": 99}).status_code == 400


def test_export_buttons_stream_each_format(staff_client, busy_task):
    page = staff_client.get(reverse("dashboard:task", args=[busy_task.pk])).content.decode()
    for fmt, rows in [("paper", 180), ("pairwise", 540), ("raw", 180)]:
        url = reverse("dashboard:export", args=[busy_task.pk, fmt])
        assert url in page
        response = staff_client.get(url)
        assert response.status_code == 200 and response.streaming
        lines = b"".join(response.streaming_content).decode().splitlines()
        assert len(lines) == rows
        json.loads(lines[0])
    bad = staff_client.get(reverse("dashboard:export", args=[busy_task.pk, "csv"]))
    assert bad.status_code == 400 and b"paper" in bad.content
    assert staff_client.get(reverse("dashboard:task", args=[999999])).status_code == 404


def test_plotly_is_served_from_the_installed_package(staff_client):
    from django.contrib.staticfiles import finders

    path = finders.find(PLOTLY_STATIC_PATH)
    assert path and path.endswith("plotly/package_data/plotly.min.js")


def test_admin_task_page_links_to_the_dashboard(admin_client):
    task = TaskFactory()
    response = admin_client.get(reverse("admin:labeling_task_change", args=[task.pk]))
    assert response.status_code == 200
    assert reverse("dashboard:task", args=[task.pk]) in response.content.decode()
