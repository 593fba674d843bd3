"""KL coefficient controllers (Ziegler et al. 2019, section 2.2)."""

from __future__ import annotations

from typing import Any


class AdaptiveKLController:
    """beta <- beta * (1 + e * n_steps / horizon), e = clip(KL / target - 1, -0.2, 0.2).

    ``hold_until_target``: beta does not fall before the KL has reached the target once. A run
    starts at KL 0 by construction (the policy is its reference), so "under target" then says
    nothing about beta; in short runs the early fall only feeds a later overshoot.
    """

    def __init__(
        self, init_kl_coef: float, target: float, horizon: int, hold_until_target: bool = False
    ) -> None:
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)
        self.hold_until_target = hold_until_target
        self.target_reached = False

    def update(self, current_kl: float, n_steps: int) -> float:
        self.target_reached = self.target_reached or current_kl >= self.target
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        if self.hold_until_target and not self.target_reached:
            proportional_error = max(proportional_error, 0.0)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "target": self.target,
            "horizon": self.horizon,
            "target_reached": self.target_reached,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])
        self.target_reached = bool(state.get("target_reached", False))


class FixedKLController:
    """Constant beta (the paper's summarization runs)."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> float:
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])
