import math

import pytest
import torch

from training.ml.kl_control import AdaptiveKLController, FixedKLController
from training.ml.losses import (
    gae,
    kl_penalized_rewards,
    kway_accuracy,
    kway_reward_loss,
    normalization_gain_bias,
    ppo_policy_loss,
    ppo_value_loss,
    whiten,
)


def test_kway_loss_matches_hand_computation():
    rewards = torch.tensor([[1.0, 2.0, 0.0, -1.0], [0.5, 0.5, 0.5, 0.5]])
    best = torch.tensor([1, 3])
    row0 = -(2.0 - math.log(math.exp(1) + math.exp(2) + math.exp(0) + math.exp(-1)))
    row1 = math.log(4)
    assert kway_reward_loss(rewards, best).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    assert kway_accuracy(rewards, torch.tensor([1, 0])).item() == 1.0


def test_gae_gamma1_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.2, 0.1, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # last token is padding
    lam = 0.5
    d2 = 1.0 - 0.1
    d1 = 0.0 + 0.1 - 0.2
    d0 = 0.0 + 0.2 - 0.5
    a2, a1 = d2, d1 + lam * d2
    a0 = d0 + lam * a1
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=lam)
    assert torch.allclose(adv, torch.tensor([[a0, a1, a2, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[a0 + 0.5, a1 + 0.2, a2 + 0.1, 0.0]]))


def test_gae_lambda1_is_monte_carlo_return():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.3, -0.2, 0.7]])
    _, ret = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[6.0, 5.0, 3.0]]))


def test_whiten_with_and_without_mean_shift():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    centered = whiten(x, mask)
    assert centered[0, :3].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-6)
    assert centered[0, 3] == 0
    kept = whiten(x, mask, shift_mean=False)
    assert kept[0, :3].tolist() == pytest.approx([1.0, 2.0, 3.0], abs=1e-6)  # std of 1,2,3 is 1
    y = torch.randn(50) * 3 + 7
    w = whiten(y, shift_mean=False)
    assert w.mean().item() == pytest.approx(y.mean().item(), abs=1e-5)
    assert (w - w.mean()).std().item() == pytest.approx(1.0, abs=1e-5)


def test_adaptive_kl_controller_updates():
    ctl = AdaptiveKLController(0.15, target=6.0, horizon=10_000)
    ctl.update(current_kl=9.0, n_steps=512)  # error 0.5 clipped to 0.2
    assert ctl.value == pytest.approx(0.15 * (1 + 0.2 * 512 / 10_000))
    ctl.update(current_kl=5.4, n_steps=1000)  # error -0.1
    assert ctl.value == pytest.approx(0.15 * (1 + 0.2 * 0.0512) * (1 - 0.1 * 0.1))
    ctl.update(current_kl=0.0, n_steps=10_000)  # error -1 clipped to -0.2
    assert ctl.value == pytest.approx(0.15 * 1.01024 * 0.99 * 0.8)
    fixed = FixedKLController(0.02)
    assert fixed.update(100.0, 512) == 0.02
    restored = AdaptiveKLController(1.0, 6.0, 10_000)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == ctl.value


def test_adaptive_kl_controller_holds_beta_until_the_kl_first_reaches_the_target():
    ctl = AdaptiveKLController(0.15, target=4.0, horizon=64, hold_until_target=True)
    ctl.update(current_kl=0.5, n_steps=32)  # under target, never reached: held
    ctl.update(current_kl=3.6, n_steps=32)
    assert ctl.value == 0.15
    ctl.update(current_kl=4.4, n_steps=32)  # error +0.1 over half the horizon: +5%
    assert ctl.value == pytest.approx(0.15 * 1.05)
    ctl.update(current_kl=3.6, n_steps=32)  # reached once: now it falls, -5%
    assert ctl.value == pytest.approx(0.15 * 1.05 * 0.95)
    restored = AdaptiveKLController(0.15, 4.0, 64, hold_until_target=True)
    restored.load_state_dict(ctl.state_dict())  # a resumed run keeps "reached"
    restored.update(current_kl=2.0, n_steps=32)  # error -0.5 clipped to -0.2: -10%
    assert restored.value == pytest.approx(0.15 * 1.05 * 0.95 * 0.9)
    plain = AdaptiveKLController(0.15, target=4.0, horizon=64)
    plain.update(current_kl=0.5, n_steps=32)  # the reference controller falls at once
    assert plain.value == pytest.approx(0.15 * 0.9)


def test_kl_penalized_rewards_put_score_at_last_token():
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-2.0, -2.0, -2.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    scores = torch.tensor([2.0, -1.0])
    rewards, kl = kl_penalized_rewards(logp, ref, scores, mask, beta=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, 0.0, 0.0], [1.0, 1.0, 1.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 2.0, 0.0], [-0.1, -0.1, -1.1]]))


def test_ppo_losses_clip():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 0.9]]))
    adv = torch.tensor([[1.0, 1.0]])
    loss, clipfrac, _ = ppo_policy_loss(logp, old, adv, torch.ones(1, 2), 0.2)
    # token 0: ratio 1.5 -> clipped to 1.2 (min of the objective); token 1: ratio 0.9 kept
    assert loss.item() == pytest.approx(-(1.2 + 0.9) / 2)
    assert clipfrac.item() == pytest.approx(0.5)
    vloss, vclip = ppo_value_loss(
        torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[0.0]]), torch.ones(1, 1), 0.2
    )
    assert vloss.item() == pytest.approx(0.5 * 1.0) and vclip.item() == 0.0
    vloss, vclip = ppo_value_loss(
        torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[2.0]]), torch.ones(1, 1), 0.2
    )
    assert vloss.item() == pytest.approx(0.5 * 1.8**2) and vclip.item() == 1.0


def test_reward_normalization_gain_bias():
    raw = torch.randn(256) * 4.0 + 3.0
    gain, bias = normalization_gain_bias(raw)
    normalized = raw.double() * gain + bias
    assert normalized.mean().item() == pytest.approx(0.0, abs=1e-9)
    assert normalized.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)


def test_penalized_advantages_ignore_tokens_after_the_end():
    """Whatever a rollout holds after a response's end (mask 0) changes nothing."""
    from training.ml.losses import penalized_advantages

    torch.manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]).float()
    logp, ref, values = (torch.randn(3, 5) for _ in range(3))
    scores = torch.tensor([1.0, -0.5, 2.0])

    def garbage(t):
        return torch.where(mask.bool(), t, torch.randn_like(t) * 100)

    clean = penalized_advantages(logp * mask, ref * mask, values * mask, scores, mask, 0.1)
    dirty = penalized_advantages(garbage(logp), garbage(ref), garbage(values), scores, mask, 0.1)
    for a, b in zip(clean, dirty, strict=True):
        torch.testing.assert_close(a, b)
        assert (a[mask == 0] == 0).all()
    advantages, _, rewards, kl = clean
    # The score sits at each response's last kept token; the KL is policy minus reference.
    torch.testing.assert_close(kl, (logp - ref) * mask)
    assert advantages[mask.bool()].mean().abs() < 1e-6  # whitened over kept tokens only
    kept = rewards[mask.bool()]
    raw = (-0.1 * (logp - ref) * mask).scatter_add(
        1, torch.tensor([[2], [4], [0]]), scores[:, None]
    )
    assert kept.mean().item() == pytest.approx(raw[mask.bool()].mean().item(), abs=1e-5)


def test_ensemble_kway_loss_weights_each_member_on_its_own_labels():
    from training.ml.losses import ensemble_kway_loss

    rewards = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])  # (B=1, K=3, E=2)
    best = torch.tensor([1])
    member0 = kway_reward_loss(rewards[..., 0], best)
    member1 = kway_reward_loss(rewards[..., 1], best)
    ones = torch.ones(1, 2)
    both = (member0 + member1) / 2
    assert ensemble_kway_loss(rewards, best, ones) == pytest.approx(both.item())
    # A member weighted 0 contributes nothing: the loss is the other member's, doubled, halved.
    only1 = torch.tensor([[0.0, 2.0]])
    assert ensemble_kway_loss(rewards, best, only1) == pytest.approx(member1.item())
    # One member, unit weights: the plain K-way loss.
    single = rewards[..., :1]
    assert ensemble_kway_loss(single, best, torch.ones(1, 1)) == pytest.approx(member0.item())


def test_bootstrap_weights_are_per_label_and_member_stable_and_about_half():
    from training.ml.losses import bootstrap_weights

    weights = bootstrap_weights(list(range(400)), 4, seed=0)
    assert weights.shape == (400, 4) and set(weights.unique().tolist()) == {0.0, 2.0}
    assert 0.4 < (weights > 0).float().mean().item() < 0.6
    assert not torch.equal(weights[:, 0], weights[:, 1])  # members see different labels
    # The same label gets the same weights whatever batch or rank it arrives in.
    assert torch.equal(bootstrap_weights([7, 3], 4, seed=0), weights[[7, 3]])
    assert not torch.equal(bootstrap_weights(list(range(400)), 4, seed=1), weights)
    assert torch.equal(bootstrap_weights([1, 2], 1, seed=0), torch.ones(2, 1))


def test_ensemble_kway_loss_pairs_each_label_with_its_own_choice():
    # Two labels with different choices, two members: every (label, member) cross-entropy is
    # against that label's choice (a loss that pairs labels and members the wrong way round
    # would score member 1 of label 0 against label 1's choice).
    from training.ml.losses import ensemble_kway_loss

    rewards = torch.tensor(
        [[[3.0, 0.0], [0.0, 1.0], [1.0, 2.0]], [[0.5, 0.0], [2.0, 0.0], [0.0, 4.0]]]
    )  # (B=2, K=3, E=2)
    best = torch.tensor([0, 2])
    expected = torch.stack(
        [
            kway_reward_loss(rewards[b : b + 1, :, e], best[b : b + 1])
            for b in range(2)
            for e in range(2)
        ]
    ).mean()
    assert ensemble_kway_loss(rewards, best, torch.ones(2, 2)) == pytest.approx(expected.item())
