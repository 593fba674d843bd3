"""What the demo loads: its task settings, logins and files (no Django models imported here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    "labels_per_comparison": 1,
    "gold_rate": 0.0,
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
Pick the continuation you would most like to read next.

- Prefer continuations that are fluent, vivid and fit the opening.
- Press 1-4 to choose, S to skip if you cannot judge, N if none is acceptable.
- Don't overthink it: a few seconds per comparison is fine.
"""
