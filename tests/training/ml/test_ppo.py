import torch

from training.ml.checkpoint import latest_checkpoint, latest_model_dir
from training.ml.config import PPOConfig, SamplingConfig
from training.ml.models import load_model

GOOD = set(range(40, 90))  # synthetic preference: fraction of response tokens in GOOD
QUERIES = ["The movie was", "It is a nice day", "Dogs and cats", "The food", "What a great"]


def good_fraction(query_ids, response_ids):
    return torch.tensor([sum(t in GOOD for t in r) / max(1, len(r)) for r in response_ids])


def tiny_config(**overrides):
    values = dict(
        batch_size=16,
        minibatch_size=8,
        gradient_accumulation_steps=2,
        ppo_epochs=2,
        learning_rate=3e-3,
        total_episodes=4096,
        init_kl_coef=0.05,
        kl_target=6.0,
        kl_horizon=1000,
        seed=1,
    )
    values.update(overrides)
    return PPOConfig(**values)


SAMPLING = SamplingConfig(
    k=1, query_length=8, response_length=6, truncate_token=None, truncate_after=0, temperature=1.0
)


def test_ppo_raises_synthetic_reward_with_bounded_kl(tiny_model_dir, tmp_path):
    from training.ml.ppo import train_policy

    seen = []
    history = train_policy(
        str(tiny_model_dir),
        good_fraction,
        QUERIES,
        tmp_path / "policy",
        tiny_config(learning_rate=1e-2),
        SAMPLING,
        episodes=16 * 24,
        progress=lambda done, total, m: seen.append((done, total)),
    )
    assert seen[-1] == (384, 384) and len(history) == 24
    first = sum(m["score"] for m in history[:3]) / 3
    last = sum(m["score"] for m in history[-3:]) / 3
    assert last > first + 0.2, [round(m["score"], 2) for m in history]
    assert all(m["kl"] < 15 for m in history)
    assert history[0]["kl"] == 0.0  # first rollout comes from the reference policy itself
    for key in (
        "beta",
        "entropy",
        "policy_loss",
        "value_loss",
        "clip_fraction",
        "approx_kl",
        "seconds",
        "lr",
    ):
        assert key in history[-1]
    assert load_model(str(latest_model_dir(tmp_path / "policy"))) is not None


def test_chunked_resume_equals_uninterrupted_run(tiny_model_dir, tmp_path):
    from training.ml.checkpoint import load_trainable_state
    from training.ml.ppo import _build_policy

    config = tiny_config(lora_rank=0)
    from training.ml.ppo import train_policy

    whole = train_policy(
        str(tiny_model_dir), good_fraction, QUERIES, tmp_path / "a", config, SAMPLING, episodes=48
    )
    train_policy(
        str(tiny_model_dir), good_fraction, QUERIES, tmp_path / "b", config, SAMPLING, episodes=16
    )
    chunked = train_policy(
        str(tiny_model_dir), good_fraction, QUERIES, tmp_path / "b", config, SAMPLING, episodes=32
    )
    assert [m["score"] for m in chunked] == [m["score"] for m in whole]
    a, b = _build_policy(str(tiny_model_dir), config), _build_policy(str(tiny_model_dir), config)
    load_trainable_state(a, latest_checkpoint(tmp_path / "a") / "trainable.safetensors")
    load_trainable_state(b, latest_checkpoint(tmp_path / "b") / "trainable.safetensors")
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    state_a = torch.load(latest_checkpoint(tmp_path / "a") / "state.pt", weights_only=False)
    state_b = torch.load(latest_checkpoint(tmp_path / "b") / "state.pt", weights_only=False)
    assert state_a["kl_controller"] == state_b["kl_controller"]
    assert state_a["step"] == state_b["step"] == 3


def test_lora_policy_uses_disabled_adapter_as_reference(tiny_model_dir, tmp_path):
    from training.ml.ppo import train_policy

    history = train_policy(
        str(tiny_model_dir),
        good_fraction,
        QUERIES,
        tmp_path / "lora",
        tiny_config(lora_rank=4, lora_alpha=8.0),
        SAMPLING,
        episodes=32,
    )
    assert history[0]["kl"] == 0.0 and len(history) == 2
    assert torch.isfinite(torch.tensor([history[-1]["policy_loss"]]))
