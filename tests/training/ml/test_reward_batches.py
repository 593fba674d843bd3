"""Reward training details: one K per batch, top-block training, bounded replay, prospective
accuracy, and data-parallel training that equals a single process."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.training.ml.test_reward import synthetic_labels
from training.ml.config import RewardConfig, SamplingConfig
from training.ml.labels import LabelRecord, bounded_replay, collate, encode_label
from training.ml.reward import (
    evaluate_reward_model,
    load_reward_model,
    score_token_ids,
    train_reward_model,
)

ROOT = Path(__file__).resolve().parents[3]
CONFIG = RewardConfig(
    learning_rate=1e-3, batch_size=8, micro_batch_size=4, normalization_samples=16
)


def test_a_batch_never_mixes_k(tiny_tokenizer):
    two, four = synthetic_labels(1, k=2)[0], synthetic_labels(1, k=4)[0]
    examples = [
        encode_label(LabelRecord.from_dict(r), tiny_tokenizer, SamplingConfig())
        for r in (two, four)
    ]
    with pytest.raises(ValueError, match="mixes K"):
        collate(examples, 0)


@pytest.mark.slow
def test_labels_with_different_k_train_and_score_like_separate_ones(tiny_model_dir, tmp_path):
    """A task whose K was edited: labels of K=2 and K=4 in one training set."""
    labels = synthetic_labels(12, seed=1, k=2) + synthetic_labels(12, seed=2, k=4)
    result = train_reward_model(labels, str(tiny_model_dir), tmp_path / "rm", CONFIG)
    assert result.metrics["labels_train"] == 24
    mixed = evaluate_reward_model(tmp_path / "rm", labels)
    assert mixed["labels"] == 24
    model, _, _ = load_reward_model(tmp_path / "rm")
    correct = 0
    for record in labels:  # each label scored alone: the same argmax as in batches
        k = len(record["sample_token_ids"])
        scores = score_token_ids(model, [record["query_token_ids"]] * k, record["sample_token_ids"])
        correct += int(scores.argmax()) == record["best"]
    assert mixed["accuracy"] == pytest.approx(correct / 24)


@pytest.mark.slow
def test_top_blocks_train_and_the_rest_stays_frozen(tiny_model_dir, tmp_path):
    from transformers import GPT2LMHeadModel

    config = RewardConfig(
        learning_rate=3e-3, batch_size=8, micro_batch_size=8, normalization_samples=16,
        trainable_layers=1, epochs=3,
    )  # fmt: skip
    result = train_reward_model(synthetic_labels(64), str(tiny_model_dir), tmp_path / "rm", config)
    before = GPT2LMHeadModel.from_pretrained(tiny_model_dir).transformer.state_dict()
    after = result.model.lm.transformer.state_dict()
    assert torch.equal(after["h.0.attn.c_attn.weight"], before["h.0.attn.c_attn.weight"])
    assert torch.equal(after["wte.weight"], before["wte.weight"])
    assert not torch.equal(after["h.1.attn.c_attn.weight"], before["h.1.attn.c_attn.weight"])
    assert not torch.equal(after["ln_f.weight"], before["ln_f.weight"])
    held_out = evaluate_reward_model(tmp_path / "rm", synthetic_labels(64, seed=9))
    assert held_out["accuracy"] > 0.5, held_out  # chance: 0.25
    with pytest.raises(ValueError, match="trainable_layers"):
        RewardConfig(trainable_layers=2, lora_rank=4).validate()


def test_every_label_is_trained_on_by_default():
    assert RewardConfig().holdout_fraction == 0.0


def test_bounded_replay_takes_every_fresh_label_and_a_bounded_share_of_old_ones():
    old, fresh = list(range(10)), [10, 11, 12]
    chosen = bounded_replay(old, fresh, ratio=1.0, seed=0)
    assert chosen[-3:] == fresh and len(chosen) == 6
    assert len(set(chosen[:3])) == 3 and set(chosen[:3]) <= set(old)
    assert chosen[:3] == sorted(chosen[:3])
    assert bounded_replay(old, fresh, ratio=0.0, seed=0) == fresh
    assert bounded_replay(old, fresh, ratio=10.0, seed=0) == old + fresh
    assert bounded_replay(old, fresh, ratio=2 / 3, seed=0)[-3:] == fresh
    assert len(bounded_replay(old, fresh, ratio=2 / 3, seed=0)) == 5  # floor(2/3 * 3) = 2 old
    assert bounded_replay(old, fresh, 1.0, seed=5) == bounded_replay(old, fresh, 1.0, seed=5)
    assert bounded_replay(old, fresh, 1.0, seed=5) != bounded_replay(old, fresh, 1.0, seed=6)


def test_bounded_replay_keeps_early_labels_from_being_seen_at_every_retrain():
    """Twenty warm-started retrains at the paper's thresholds (n0 = 64, N = 2,000): without
    the bound the first label is trained on 20 times; with ratio 1 about 1 + ln(N / n0)."""
    from training.schedule import Schedule, retrain_thresholds

    thresholds = retrain_thresholds(Schedule(n0=64, n=2000, episodes=2048, retrains=20))
    assert len(thresholds) == 20
    exposures = []
    for seed in range(200):
        seen, count, previous = 0, 0, 0
        for round_, threshold in enumerate(thresholds):
            old, fresh = list(range(previous)), list(range(previous, threshold))
            chosen = fresh if round_ == 0 else bounded_replay(old, fresh, 1.0, seed * 100 + round_)
            count += 0 in chosen
            seen, previous = seen + len(chosen), threshold
        exposures.append(count)
    assert statistics.mean(exposures) < 6, statistics.mean(exposures)
    assert seen < 2 * 2000  # about twice the labels in all, not 20 passes over the early ones


@pytest.mark.slow
def test_distributed_reward_training_equals_one_process(tiny_model_dir, tmp_path):
    """17 labels, batches of 8, 2 ranks: the last batch has 1 label, so one rank's shard is
    empty; it must still join the gradient sum (else gloo aborts) and the result must equal a
    single-process run on the same labels."""
    port = 29500 + os.getpid() % 1000
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(port),
        str(ROOT / "tests/training/ml/distributed_reward_worker.py"),
        str(tiny_model_dir), str(tmp_path / "ddp"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    from tests.training.ml.distributed_reward_worker import CONFIG as WORKER_CONFIG
    from tests.training.ml.distributed_reward_worker import LABELS

    single = train_reward_model(LABELS, str(tiny_model_dir), tmp_path / "one", WORKER_CONFIG)
    ddp, _, meta = load_reward_model(tmp_path / "ddp")
    assert meta["metrics"]["labels_train"] == 17
    assert meta["metrics"]["train_loss"] == pytest.approx(single.metrics["train_loss"], rel=1e-6)
    # Weights agree to float32 rounding. Biases that the K-way softmax and attention cannot see
    # (a shift of every reward or key) get gradients of rounding noise, which Adam scales up
    # to full steps, so they are compared through what they produce: normalized rewards.
    ddp_weights = dict(ddp.named_parameters())
    for name, weight in single.model.named_parameters():
        if name.endswith("weight"):
            torch.testing.assert_close(weight, ddp_weights[name], rtol=1e-4, atol=1e-5)
    queries = [r["query_token_ids"] for r in LABELS for _ in range(4)]
    responses = [s for r in LABELS for s in r["sample_token_ids"]]
    torch.testing.assert_close(
        score_token_ids(single.model, queries, responses),
        score_token_ids(ddp, queries, responses),
        rtol=0,
        atol=1e-3,
    )
    moved = single.model.head.linear.weight
    fresh = train_reward_model(LABELS[:1], str(tiny_model_dir), tmp_path / "x", WORKER_CONFIG)
    assert not torch.equal(moved, fresh.model.head.linear.weight)
