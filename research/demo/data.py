"""What the demo loads: its task settings, logins, files and gold answers, and how its simulated
labelers work (no Django models imported here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labeling.textstats import sentiment

HERE = Path(__file__).resolve().parent
PROMPTS_FILE = HERE / "prompts.jsonl"  # the train prompts (make_comparisons samples them)
COMPARISONS_FILE = HERE / "comparisons.jsonl"  # K samples per train prompt, with token ids
EVAL_PROMPTS_FILE = HERE / "eval_prompts.jsonl"  # answered by each policy version (dashboard)
DEMO_TASK_NAME = "Demo: story continuation"


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: str  # "researcher" (staff, Researchers group) or "labeler"


DEMO_USERS = (
    DemoUser("researcher", "researcher-demo-pass", "researcher"),
    DemoUser("alice", "alice-demo-pass", "labeler"),
    DemoUser("bob", "bob-demo-pass", "labeler"),
)

# Small enough that 2 CPU cores show a new policy version within minutes.
DEMO_TASK_SETTINGS = {
    "kind": "continuation",
    "status": "active",
    "base_model": "embedded:smollm2-135m",
    "k": 4,
    "query_length": 32,
    "response_length": 16,
    "temperature": 0.7,
    "truncation_token": ".",
    "truncation_min_position": 8,
    # Three labels per comparison: the two simulated labelers leave one for a person, so
    # that alice and bob label what the bots labeled and agreement (alpha, kappa) is live.
    "labels_per_comparison": 3,
    # One fetch in eight serves a gold comparison (GOLD_ITEMS of them, answers in the file).
    "gold_rate": 0.125,
    "label_budget": 400,
    "lease_seconds": 300,
    "training_settings": {"preset": "cpu-small"},
    "schedule": {
        "n0": 24,
        "n": 240,
        "episodes": 512,
        "retrains": 6,
        "chunk_episodes": 32,
        "buffer": 16,
    },
}

DEMO_INSTRUCTIONS = """\
Pick the continuation with the most positive, upbeat mood that still fits the opening.

- Cheerful, hopeful, kind or funny beats gloomy, violent or sad.
- Press 1-4 to choose, S to skip if you cannot judge, N if none is acceptable.
- Don't overthink it: a few seconds per comparison is fine.
"""

# --- gold comparisons -------------------------------------------------------------------------

GOLD_ITEMS = 10
"""Comparisons of the shipped file that are gold: the researcher's answer is known."""
GOLD_MARGIN = 0.3
"""A comparison is gold only when its most positive sample leads the next by this much VADER
compound sentiment: gold answers must be clear, or gold accuracy measures noise."""


def gold_answer(samples: Sequence[str]) -> int | None:
    """The instructions' answer (the most positive sample, by VADER), or None when no sample
    is clearly the most positive."""
    scores = sorted(((sentiment(text), i) for i, text in enumerate(samples)), reverse=True)
    (best, index), (second, _) = scores[0], scores[1]
    return index if best - second >= GOLD_MARGIN else None


def mark_gold(rows: list[dict]) -> None:
    """Give the first ``GOLD_ITEMS`` rows with a clear answer their ``gold_choice`` (what
    make_comparisons writes into the file, so the answers are in the file for all to read)."""
    marked = 0
    for row in rows:
        row.pop("gold_choice", None)
        answer = gold_answer(row["samples"]) if marked < GOLD_ITEMS else None
        if answer is not None:
            row["gold_choice"] = answer
            marked += 1


# --- simulated labelers -----------------------------------------------------------------------

SIMULATED_LABELERS = 2
SECONDS_PER_LABEL = 6.0
"""A human pace: two simulated labelers give 20 labels a minute, and each comparison they
label keeps a slot for a person (overlap 3)."""
