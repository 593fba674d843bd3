"""bf16 autocast over float32 master weights: the numerics on CPU (losses within tolerance of
float32 on a tiny model, parameters and heads stay float32), and the modes."""

from __future__ import annotations

import pytest
import torch

from tests.training.ml.test_ppo import QUERIES, SAMPLING, good_fraction, tiny_config
from tests.training.ml.test_reward import synthetic_labels
from training.ml import precision
from training.ml.config import PPOConfig, RewardConfig
from training.ml.losses import logprobs_from_logits, ppo_policy_loss, ppo_value_loss
from training.ml.models import PolicyWithValue, load_model
from training.ml.presets import preset

CPU = torch.device("cpu")


def test_modes():
    assert not precision.bf16_enabled("off", CPU)
    assert precision.bf16_enabled("bf16", CPU)
    assert not precision.bf16_enabled("auto", CPU)  # auto: CUDA only
    with pytest.raises(ValueError, match="mixed_precision"):
        precision.bf16_enabled("fp16", CPU)
    assert preset("paper").ppo.mixed_precision == preset("paper").reward.mixed_precision == "auto"
    assert preset("cpu-small").ppo.mixed_precision == "off"
    with pytest.raises(ValueError, match="mixed_precision"):
        PPOConfig(mixed_precision="fp8").validate()


def test_autocast_runs_matmuls_in_bf16_only_when_enabled():
    x = torch.randn(4, 8)
    w = torch.randn(8, 8)
    with precision.autocast(CPU, True):
        assert (x @ w).dtype == torch.bfloat16
    with precision.autocast(CPU, False):
        assert (x @ w).dtype == torch.float32


def batch(vocab: int, rows: int = 6, query: int = 5, response: int = 7):
    generator = torch.Generator().manual_seed(0)
    query_ids = torch.randint(1, vocab, (rows, query), generator=generator)
    response_ids = torch.randint(1, vocab, (rows, response), generator=generator)
    mask = torch.ones(rows, response, dtype=torch.long)
    mask[0, 4:] = 0  # one response cut early
    return query_ids, torch.ones_like(query_ids), response_ids, mask


def test_ppo_losses_in_bf16_are_within_tolerance_of_float32(tiny_model_dir):
    torch.manual_seed(0)
    policy = PolicyWithValue(load_model(str(tiny_model_dir)), load_model(str(tiny_model_dir)))
    with torch.no_grad():  # a trained-looking value head, not the zero init
        policy.value_head.linear.weight.normal_(std=0.3)
    query_ids, query_mask, response_ids, keep = batch(policy.lm.config.vocab_size)
    mask = keep.float()
    with torch.no_grad():
        old_logits, old_values = policy(query_ids, query_mask, response_ids, keep, 0.7)
    old_logprobs = logprobs_from_logits(old_logits, response_ids) * mask
    advantages = torch.randn(mask.shape, generator=torch.Generator().manual_seed(1)) * mask
    returns = old_values.detach() + advantages

    def losses(bf16: bool) -> tuple[torch.Tensor, ...]:
        with precision.autocast(CPU, bf16):
            logits, values = policy(query_ids, query_mask, response_ids, keep, 0.7)
        assert logits.dtype == values.dtype == torch.float32  # log-softmax and head in fp32
        logprobs = logprobs_from_logits(logits, response_ids)
        pg_loss, _, _ = ppo_policy_loss(logprobs, old_logprobs, advantages, mask, 0.2)
        vf_loss, _ = ppo_value_loss(values, old_values, returns, mask, 0.2)
        return logprobs * mask, pg_loss, vf_loss

    fp32, bf16 = losses(False), losses(True)
    assert not torch.equal(fp32[0], bf16[0])  # bf16 really ran
    torch.testing.assert_close(bf16[0], fp32[0], rtol=0, atol=0.05)  # log-probs, nats
    torch.testing.assert_close(bf16[1], fp32[1], rtol=0.05, atol=0.01)  # policy loss
    torch.testing.assert_close(bf16[2], fp32[2], rtol=0.05, atol=0.01)  # value loss


@pytest.mark.slow
def test_reward_training_in_bf16_is_within_tolerance_of_float32(tiny_model_dir, tmp_path):
    from training.ml.reward import train_reward_model

    labels = synthetic_labels(24, seed=4)
    config = dict(learning_rate=1e-3, batch_size=8, micro_batch_size=4, normalization_samples=16)
    runs = {
        mode: train_reward_model(
            labels,
            str(tiny_model_dir),
            tmp_path / mode,
            RewardConfig(mixed_precision=mode, **config),
        )
        for mode in ("off", "bf16")
    }
    fp32, bf16 = runs["off"].metrics, runs["bf16"].metrics
    assert (fp32["bf16"], bf16["bf16"]) == (0.0, 1.0)
    assert bf16["train_loss"] != fp32["train_loss"]
    assert bf16["train_loss"] == pytest.approx(fp32["train_loss"], rel=0.02)
    assert bf16["train_accuracy"] == pytest.approx(fp32["train_accuracy"], abs=0.1)
    model = runs["bf16"].model
    assert model is not None
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # master weights
    assert runs["bf16"].gain == pytest.approx(runs["off"].gain, rel=0.05)


@pytest.mark.slow
def test_ppo_trains_in_bf16_with_float32_master_weights(tiny_model_dir, tmp_path):
    from training.ml import ppo

    built: list[PolicyWithValue] = []
    original = ppo._build_policy

    def keep(base, config):
        built.append(original(base, config))
        return built[-1]

    histories = {}
    for mode in ("off", "bf16"):
        config = tiny_config(total_episodes=32, mixed_precision=mode)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ppo, "_build_policy", keep)
            histories[mode] = ppo.train_policy(
                str(tiny_model_dir), good_fraction, QUERIES, tmp_path / mode, config, SAMPLING
            )
    assert {p.dtype for p in built[-1].parameters()} == {torch.float32}
    fp32, bf16 = histories["off"][0], histories["bf16"][0]
    # The first batch: same rollouts but for the odd token drawn differently.
    assert bf16["score"] == pytest.approx(fp32["score"], abs=0.1)
    # Policy and reference run at the same precision: no KL out of rounding at the start.
    assert abs(bf16["kl"]) < 1e-3 and abs(fp32["kl"]) < 1e-6
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in histories["bf16"])
