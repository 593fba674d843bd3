"""The researchers' admin: access, task validation, instructions versions, membership,
imports, gold labeling, read-only labels."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from labeling.models import Comparison, InstructionsVersion, Prompt, Task, TaskLabeler
from research.services import setup_researcher_group
from tests.factories import ComparisonFactory, TaskFactory, UserFactory

pytestmark = pytest.mark.django_db


class _FormValues(HTMLParser):
    """Collects the submitted values of the first form with method=post (as a browser would)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self.in_form = False
        self.textarea: str | None = None
        self.select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("method", "").lower() == "post":
            self.in_form = True
        if not self.in_form or ("name" not in a and tag != "option"):
            return
        if tag == "input" and a.get("type") not in ("submit", "file", "button"):
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.values[a["name"]] = a.get("value") or ("on" if a.get("type") == "checkbox" else "")
        elif tag == "textarea":
            self.textarea = a["name"]
            self.values[a["name"]] = ""
        elif tag == "select":
            self.select = a["name"]
            self.values.setdefault(a["name"], "")
        elif tag == "option" and self.select and "selected" in a:
            self.values[self.select] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "textarea":
            self.textarea = None
        elif tag == "select":
            self.select = None
        elif tag == "form":
            self.in_form = False

    def handle_data(self, data):
        if self.textarea:
            self.values[self.textarea] += data


def form_values(response) -> dict[str, str]:
    parser = _FormValues()
    parser.feed(response.content.decode())
    values = parser.values
    for name in [n for n in values if n.startswith("instructions_text")]:
        values[name] = values[name].lstrip("\n")
    return values


@pytest.fixture
def researcher(client):
    user = UserFactory(username="researcher", is_staff=True)
    user.groups.add(setup_researcher_group())
    client.force_login(user)
    return user


def add_task(client, **overrides):
    values = form_values(client.get(reverse("admin:labeling_task_add")))
    values.update({"name": "Positive continuations", **overrides})
    return client.post(reverse("admin:labeling_task_add"), values)


def errors_of(response) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {name: list(errs) for name, errs in form.errors.items()}


# ---- access ----------------------------------------------------------------------------


def test_non_staff_are_redirected_from_the_admin(client):
    client.force_login(UserFactory())
    for url in ("/admin/", reverse("admin:labeling_task_changelist")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_anonymous_are_redirected_from_the_admin(client):
    response = client.get(reverse("admin:labeling_task_add"))
    assert response.status_code == 302


def test_researcher_pages_load(client, researcher):
    task = TaskFactory()
    ComparisonFactory(task=task)
    urls = [
        reverse("admin:index"),
        reverse("admin:labeling_task_changelist"),
        reverse("admin:labeling_task_add"),
        reverse("admin:labeling_task_change", args=[task.pk]),
        reverse("admin:labeling_task_import_prompts", args=[task.pk]),
        reverse("admin:labeling_task_import_comparisons", args=[task.pk]),
        reverse("admin:labeling_prompt_changelist") + f"?task__id__exact={task.pk}",
        reverse("admin:labeling_comparison_changelist") + "?is_gold__exact=0&status__exact=open",
        reverse("admin:labeling_label_changelist") + "?kind__exact=choice",
        reverse("admin:labeling_assignment_changelist"),
    ]
    for url in urls:
        assert client.get(url).status_code == 200, url
    page = client.get(reverse("admin:labeling_task_change", args=[task.pk])).content.decode()
    assert reverse("admin:labeling_task_import_prompts", args=[task.pk]) in page
    assert reverse("admin:labeling_task_import_comparisons", args=[task.pk]) in page


def test_staff_without_researcher_permissions_cannot_import(client):
    client.force_login(UserFactory(is_staff=True))
    task = TaskFactory()
    response = client.get(reverse("admin:labeling_task_import_prompts", args=[task.pk]))
    assert response.status_code == 403


# ---- task settings ---------------------------------------------------------------------


def test_researcher_creates_a_task_with_instructions_and_training_settings(client, researcher):
    settings_json = json.dumps({"preset": "cpu-tiny", "reward": {"learning_rate": 0.001}})
    response = add_task(
        client, instructions_text="Pick the happiest.", training_settings=settings_json
    )
    assert response.status_code == 302, errors_of(response)
    task = Task.objects.get(name="Positive continuations")
    assert task.created_by == researcher
    assert task.training_settings["preset"] == "cpu-tiny"
    assert list(task.instructions.values_list("version", "text")) == [(1, "Pick the happiest.")]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("k", "10", "K must be between 2 and 9"),
        ("k", "1", "K must be between 2 and 9"),
        ("temperature", "0", "Temperature must be greater than 0"),
        ("query_length", "0", "Query length must be between"),
        ("response_length", "100000", "Response length must be between"),
        ("truncation_min_position", "24", "less than the response length"),
        ("labels_per_comparison", "0", "at least 1"),
        ("gold_rate", "1.5", "Gold rate must be between 0 and 1"),
        ("gold_rate", "-0.1", "Gold rate must be between 0 and 1"),
        ("label_budget", "0", "label budget must be at least 1"),
        ("lease_seconds", "5", "Lease seconds must be between"),
        ("agreement_threshold", "2", "agreement threshold must be between 0 and 1"),
        ("training_settings", "[1, 2]", "must be a JSON object"),
        ("training_settings", '{"ppo": {"clip_range": -1}}', "ppo.clip_range: must be > 0"),
        ("training_settings", '{"rewrd": {}}', "rewrd: unknown key"),
        ("training_settings", '{"preset": "huge"}', "unknown preset 'huge'"),
        ("training_settings", "{not json", "Enter a valid JSON"),
        ("schedule", '{"n0": 10, "n": 5}', "n: must be >= n0"),
        ("schedule", '{"speed": 1}', "speed: unknown key"),
    ],
)
def test_every_task_setting_is_validated(client, researcher, field, value, message):
    response = add_task(client, **{field: value})
    assert response.status_code == 200
    errors = errors_of(response)
    assert field in errors, errors
    assert any(message in e for e in errors[field]), errors[field]
    assert not Task.objects.exists()


def test_editing_instructions_creates_a_new_version_and_keeps_the_old(client, researcher):
    task = TaskFactory()
    InstructionsVersion.objects.create(task=task, version=1, text="Old text.")
    url = reverse("admin:labeling_task_change", args=[task.pk])
    values = form_values(client.get(url))
    assert values["instructions_text"] == "Old text."
    client.post(url, values)  # unchanged: no new version
    assert task.instructions.count() == 1
    values["instructions_text"] = "New text."
    response = client.post(url, values)
    assert response.status_code == 302, errors_of(response)
    assert list(task.instructions.order_by("version").values_list("version", "text")) == [
        (1, "Old text."),
        (2, "New text."),
    ]


def test_membership_inline_adds_a_labeler(client, researcher):
    task = TaskFactory()
    labeler = UserFactory(username="lena")
    url = reverse("admin:labeling_task_change", args=[task.pk])
    values = form_values(client.get(url))
    values["memberships-0-labeler"] = str(labeler.pk)
    response = client.post(url, values)
    assert response.status_code == 302, errors_of(response)
    assert TaskLabeler.objects.filter(task=task, labeler=labeler).exists()


# ---- imports ---------------------------------------------------------------------------


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def test_prompt_import_view_imports_jsonl_and_csv(client, researcher):
    task = TaskFactory()
    url = reverse("admin:labeling_task_import_prompts", args=[task.pk])
    response = client.post(url, {"file": upload("p.jsonl", b'{"text": "a"}\n{"text": "b"}\n')})
    assert response.status_code == 302
    response = client.post(url, {"file": upload("p.csv", b"text\nc\n"), "split": "eval"})
    assert response.status_code == 302
    assert dict(Prompt.objects.values_list("text", "split")) == {
        "a": "train",
        "b": "train",
        "c": "eval",
    }


def test_prompt_import_view_reports_the_bad_line_and_imports_nothing(client, researcher):
    task = TaskFactory()
    url = reverse("admin:labeling_task_import_prompts", args=[task.pk])
    response = client.post(url, {"file": upload("p.jsonl", b'{"text": "a"}\n{"text": \n')})
    assert response.status_code == 400
    assert "Nothing was imported. line 2: bad JSON" in response.content.decode()
    assert not Prompt.objects.exists()
    response = client.post(url, {"file": upload("p.txt", b"a\n")})
    assert response.status_code == 400
    assert "unsupported file type" in response.content.decode()


def test_comparison_import_view(client, researcher):
    task = TaskFactory(k=2)
    url = reverse("admin:labeling_task_import_comparisons", args=[task.pk])
    good = b'{"prompt": "p", "samples": ["x", "y"], "gold_choice": 1}\n'
    assert client.post(url, {"file": upload("c.jsonl", good)}).status_code == 302
    assert Comparison.objects.get().gold_choice == 1
    bad = b'{"prompt": "q", "samples": ["x", "y"]}\n{"prompt": "r", "samples": ["x"]}\n'
    response = client.post(url, {"file": upload("c.jsonl", bad)})
    assert response.status_code == 400
    assert "line 2: expected K=2 samples, got 1" in response.content.decode()
    assert Comparison.objects.count() == 1


# ---- gold labels and read-only data ----------------------------------------------------


def test_researcher_labels_gold_comparisons_through_the_action(client, researcher):
    task = TaskFactory(k=3)
    first, second = ComparisonFactory(task=task), ComparisonFactory(task=task)
    response = client.post(
        reverse("admin:labeling_comparison_changelist"),
        {"action": "label_gold", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 302
    gold_url = response["Location"]
    page = client.get(gold_url)
    assert page.status_code == 200
    assert first.samples[2] in page.content.decode()
    response = client.post(gold_url, {"choice": "2"})
    assert response.status_code == 302
    assert response["Location"].startswith(
        reverse("admin:labeling_comparison_gold", args=[second.pk])
    )
    first.refresh_from_db()
    assert (first.is_gold, first.gold_choice) == (True, 2)
    response = client.post(response["Location"], {"choice": "3"})  # out of range for K=3
    assert response.status_code == 400
    second.refresh_from_db()
    assert not second.is_gold
    gold_url = reverse("admin:labeling_comparison_gold", args=[first.pk])
    client.post(gold_url, {"clear": "on"})
    first.refresh_from_db()
    assert (first.is_gold, first.gold_choice) == (False, None)


def test_labels_are_read_only_in_the_admin(client, researcher):
    assert client.get(reverse("admin:labeling_label_add")).status_code == 403
    assert client.get(reverse("admin:labeling_comparison_add")).status_code == 403
