"""PPO's objective, checked end to end on a tiny model: each test here fails when one piece of
the math is wrong (the policy used as its own KL reference, old and reference log-probs
swapped, the penalty for responses that did not end dropped, tokens after truncation left in
the loss, an adaptive KL coefficient that does not move)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from tests.training.ml.conftest import build_model, build_tokenizer
from tests.training.ml.test_ppo import QUERIES, SAMPLING, good_fraction, tiny_config
from training.ml.config import SamplingConfig
from training.ml.ppo import train_policy

pytestmark = pytest.mark.slow

# Responses end after a token whose text ends with "e" from position 1 on: the tiny model ends
# roughly half of its 6-token responses, so every batch has ended and unended ones.
TRUNCATING = SamplingConfig(
    k=1, query_length=8, response_length=6, truncate_token="e", truncate_after=1, temperature=1.0
)


def mean(history, key, last=3):
    return sum(m[key] for m in history[-last:]) / last


def test_kl_to_the_reference_grows_as_the_policy_moves(tiny_model_dir, tmp_path):
    history = train_policy(
        str(tiny_model_dir),
        good_fraction,
        QUERIES,
        tmp_path / "p",
        tiny_config(learning_rate=1e-2, adaptive_kl=False, init_kl_coef=0.0),
        SAMPLING,
        episodes=16 * 6,
    )
    assert history[0]["kl"] == 0.0  # the first rollout comes from the reference itself
    # With the policy as its own reference the KL would stay exactly 0.
    assert all(m["kl"] > 0.01 for m in history[2:]), [m["kl"] for m in history]


def test_a_high_beta_keeps_the_policy_closer_to_the_reference(tiny_model_dir, tmp_path):
    def run(beta: float, name: str) -> list[dict[str, float]]:
        config = tiny_config(learning_rate=1e-2, adaptive_kl=False, init_kl_coef=beta)
        return train_policy(
            str(tiny_model_dir), good_fraction, QUERIES, tmp_path / name, config, SAMPLING, 16 * 8
        )

    free, held = run(0.001, "free"), run(1.0, "held")
    # Swapping old and reference log-probs turns the penalty into a bonus (and the reported
    # KL negative): the held run would then drift further than the free one.
    assert mean(free, "kl") > 0 and mean(held, "kl") > 0
    assert mean(held, "kl") < 0.5 * mean(free, "kl"), (mean(held, "kl"), mean(free, "kl"))


def constant(value: float):
    def scorer(query_ids, response_ids):
        return torch.full((len(response_ids),), value)

    return scorer


def test_responses_that_did_not_end_score_the_penalty(tiny_model_dir, tmp_path):
    history = train_policy(
        str(tiny_model_dir),
        constant(0.5),
        QUERIES,
        tmp_path / "p",
        tiny_config(learning_rate=1e-2, penalty_reward=-1.0),
        TRUNCATING,
        episodes=16 * 10,
    )
    for m in history:
        assert m["response_length"] < TRUNCATING.response_length  # tokens after an end are out
        assert m["score"] == pytest.approx(0.5)  # the scorer's own score, every response
        ended = m["ended_fraction"]
        assert m["score_with_penalty"] == pytest.approx(0.5 * ended - 1.0 * (1 - ended))
    assert 0 < history[0]["ended_fraction"] < 1
    # The only signal is the penalty: PPO learns to end its responses.
    assert mean(history, "ended_fraction") > history[0]["ended_fraction"] + 0.2


def pad_variant(model_dir: Path, tmp_path: Path) -> Path:
    """The same weights with another padding token (a real, non-end token)."""
    tokenizer = build_tokenizer()
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(7)
    directory = tmp_path / "pad7"
    build_model(len(tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_tokens_after_truncation_do_not_reach_the_loss(tiny_model_dir, tmp_path):
    """Tokens after a response's end are replaced by padding; when every term of the loss masks
    them, which padding token is used cannot change a single parameter."""
    other = pad_variant(tiny_model_dir, tmp_path)
    config = tiny_config(learning_rate=1e-2, lora_rank=0)
    runs = {}
    for name, directory in (("pad0", tiny_model_dir), ("pad7", other)):
        history = train_policy(
            str(directory), good_fraction, QUERIES, tmp_path / name, config, TRUNCATING, 32
        )
        assert 0 < history[0]["ended_fraction"] < 1  # there are tokens after an end to mask
        runs[name] = history
    from training.ml.checkpoint import latest_checkpoint, load_trainable_state
    from training.ml.ppo import _build_policy

    a, b = _build_policy(str(tiny_model_dir), config), _build_policy(str(other), config)
    load_trainable_state(a, latest_checkpoint(tmp_path / "pad0") / "trainable.safetensors")
    load_trainable_state(b, latest_checkpoint(tmp_path / "pad7") / "trainable.safetensors")
    initial = build_model(len(build_tokenizer())).state_dict()
    moved = a.lm.state_dict()["transformer.h.0.attn.c_attn.weight"]
    assert not torch.equal(moved, initial["transformer.h.0.attn.c_attn.weight"])
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6, msg=name)
    assert [m["kl"] for m in runs["pad0"]] == pytest.approx([m["kl"] for m in runs["pad7"]])


@pytest.mark.parametrize(("target", "direction"), [(1e-4, "up"), (1e4, "down")])
def test_adaptive_beta_follows_the_kl_target(tiny_model_dir, tmp_path, target, direction):
    config = tiny_config(
        learning_rate=1e-2, kl_target=target, kl_horizon=None, total_episodes=16 * 6
    )
    assert config.horizon() == 16  # total / 10, at least one batch
    history = train_policy(
        str(tiny_model_dir), good_fraction, QUERIES, tmp_path / "p", config, SAMPLING, 16 * 6
    )
    betas = [m["beta"] for m in history]  # the beta each batch was trained with
    steps = list(itertools.pairwise(betas[1:]))
    if direction == "up":  # KL above the target after the first batch: beta rises 20% a batch
        assert all(b == pytest.approx(a * 1.2) for a, b in steps), betas
    else:
        assert all(b == pytest.approx(a * 0.8) for a, b in steps), betas
