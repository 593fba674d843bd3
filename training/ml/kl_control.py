"""KL coefficient controllers (Ziegler et al. 2019, section 2.2)."""

from __future__ import annotations

from typing import Any


class AdaptiveKLController:
    """beta <- beta * (1 + e * n_steps / horizon), e = clip(KL / target - 1, -0.2, 0.2)."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


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
