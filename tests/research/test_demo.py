import json

import pytest
from django.core.management import call_command

from labeling.models import Comparison, Prompt, Task
from labeling.textstats import sentiment
from research.demo.data import (
    COMPARISONS_FILE,
    DEMO_TASK_NAME,
    DEMO_TASK_SETTINGS,
    DEMO_USERS,
    GOLD_ITEMS,
    GOLD_MARGIN,
    PROMPTS_FILE,
    SECONDS_PER_LABEL,
    SIMULATED_LABELERS,
    gold_answer,
)
from training.models import PolicyVersion


@pytest.mark.django_db
def test_load_demo_creates_a_ready_task_and_is_idempotent(client):
    call_command("load_demo")
    call_command("load_demo")  # a second run refreshes logins and duplicates nothing
    task = Task.objects.get(name=DEMO_TASK_NAME)
    assert task.status == Task.Status.ACTIVE
    assert Comparison.objects.filter(task=task, status="open").count() == 60
    # Overlap 3: the simulated labelers leave a slot of each comparison for a person.
    assert set(Comparison.objects.filter(task=task).values_list("overlap", flat=True)) == {3}
    assert task.labels_per_comparison > SIMULATED_LABELERS
    gold = Comparison.objects.filter(task=task, is_gold=True)
    assert gold.count() == GOLD_ITEMS and task.gold_rate > 0
    assert not gold.filter(gold_choice__isnull=True).exists()
    ended = Comparison.objects.filter(task=task).values_list("sample_ended", flat=True)
    assert list(ended) == [[True] * task.k] * 60  # labelers see only responses that ended
    assert Prompt.objects.filter(task=task, split="train", token_ids__isnull=False).count() == 60
    assert Prompt.objects.filter(task=task, split="eval").count() == 8
    base = PolicyVersion.objects.get(task=task, number=0)
    assert base.status == "promoted"
    assert set(Comparison.objects.filter(task=task).values_list("policy_version", flat=True)) == {
        base.pk
    }
    assert task.instructions.count() == 1
    labelers = {u.username for u in DEMO_USERS if u.role == "labeler"}
    assert set(task.labelers.values_list("username", flat=True)) == labelers
    for user in DEMO_USERS:
        assert client.login(username=user.username, password=user.password)
        response = client.get("/admin/")
        assert (response.status_code == 200) == (user.role == "researcher")
        client.logout()


# --- the shipped comparisons: K responses each, all ended under the demo task's rule ---------


def shipped_comparisons() -> list[dict]:
    return [json.loads(line) for line in COMPARISONS_FILE.read_text().splitlines() if line]


def test_shipped_comparisons_follow_the_demo_task_settings():
    """One comparison per demo prompt, K samples each, all marked ended, each long enough to
    have ended at or after the minimum position and most cut at the truncation token (the
    rest at EOS); no torch needed (the rule itself is checked on the token ids below)."""
    settings = DEMO_TASK_SETTINGS
    k, cut = settings["k"], settings["truncation_token"]
    cut_at_token = total = 0
    prompts = [json.loads(line) for line in PROMPTS_FILE.read_text().splitlines() if line]
    rows = shipped_comparisons()
    assert [r["prompt_id"] for r in rows] == [p["id"] for p in prompts]
    assert [r["prompt"] for r in rows] == [p["text"] for p in prompts]
    for row in rows:
        assert row["policy_version"] == 0
        assert row["sample_ended"] == [True] * k
        assert len(row["samples"]) == len(row["sample_token_ids"]) == k
        assert 0 < len(row["prompt_token_ids"]) <= settings["query_length"]
        for text, ids in zip(row["samples"], row["sample_token_ids"], strict=True):
            assert settings["truncation_min_position"] < len(ids) <= settings["response_length"]
            cut_at_token += text.endswith(cut)
            total += 1
    assert cut_at_token >= 0.9 * total


@pytest.mark.slow
def test_shipped_comparisons_ended_under_the_truncation_rule():
    """Recomputed on the token ids with the embedded model's tokenizer: every sample ended,
    nothing follows its end, its text is its decoded ids, and each prompt's ids are what the
    demo task's query length keeps (what the model saw)."""
    torch = pytest.importorskip("torch")
    from training.ml.models import load_tokenizer
    from training.ml.sampling import encode_queries, truncate_responses, truncation_token_ids

    settings = DEMO_TASK_SETTINGS
    tokenizer = load_tokenizer(str(settings["base_model"]))
    cut_ids = truncation_token_ids(tokenizer, str(settings["truncation_token"]))
    for row in shipped_comparisons():
        assert (
            row["prompt_token_ids"]
            == encode_queries(tokenizer, [row["prompt"]], int(settings["query_length"]))[0]
        )
        for text, ids in zip(row["samples"], row["sample_token_ids"], strict=True):
            assert tokenizer.decode(ids, skip_special_tokens=True) == text  # no <|im_end|>
            mask, ended = truncate_responses(
                torch.tensor([ids]),
                cut_ids,
                int(settings["truncation_min_position"]),
                [tokenizer.eos_token_id],
            )
            assert bool(ended[0]) and bool(mask.all()), (row["prompt_id"], text)


def test_gold_answers_are_the_clearly_most_positive_sample():
    rows = [r for r in shipped_comparisons() if "gold_choice" in r]
    assert len(rows) == GOLD_ITEMS
    for row in rows:
        scores = [sentiment(text) for text in row["samples"]]
        best = scores[row["gold_choice"]]
        assert all(best - s >= GOLD_MARGIN for i, s in enumerate(scores) if i != row["gold_choice"])
    assert gold_answer(["What a lovely, happy day!", "It was awful.", "A door.", "Rain."]) == 0
    assert gold_answer(["A door.", "A window.", "A wall.", "A roof."]) is None  # no clear best


def test_simulated_labelers_keep_a_human_pace():
    # Two labelers at 6 s: 20 labels a minute; 24 labels (the first reward model) in ~72 s.
    assert 3 <= SECONDS_PER_LABEL <= 20
    assert 60 / SECONDS_PER_LABEL * SIMULATED_LABELERS <= 30


def test_run_demo_drops_the_jobs_an_earlier_demo_left_in_the_filesystem_broker(settings, tmp_path):
    from research.management.commands.run_demo import drop_queued_messages

    folder = tmp_path / "out"
    folder.mkdir()
    for name in ("1_a.sampling.msg", "2_b.training.msg"):
        (folder / name).write_text("{}")
    (folder / "keep.txt").write_text("not a message")
    settings.CELERY_BROKER_URL = "filesystem://localhost/"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(folder)}
    assert drop_queued_messages() == 2
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    assert drop_queued_messages() == 0
    # A Redis broker's queue is not a folder of files: nothing is touched.
    (folder / "3_c.sampling.msg").write_text("{}")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    assert drop_queued_messages() == 0 and (folder / "3_c.sampling.msg").exists()
