"""The online schedule of Ziegler et al. (2019), pure (no Django, no torch).

Before PPO episode n at least l(n) = N0 + (N - N0) * (1 - (1 - n / N_pi)^2) labels must exist;
the reward model is retrained at ``retrains`` evenly spaced values of l(n), from N0 to N.
A task configures it with its ``schedule`` JSON: ``n0``, ``n``, ``episodes`` (N_pi),
``retrains``, ``chunk_episodes`` (PPO episodes per published policy version), ``buffer``
(unlabeled comparisons kept open for labelers) and ``lookahead_seconds`` (how far ahead of
labelers the buffer must be while a model trains).

Two rules of this implementation, beyond the paper, keep a small machine busy with what
labelers wait for: until the first policy beyond v0 is published, a due PPO chunk goes before
another reward-model retrain (:func:`retrain_waits_for_first_policy`); and while a training
run is live, sampling does not take CPU from it as long as the open comparisons cover what
labelers will take in the next ``lookahead_seconds`` (:func:`comparisons_to_sample`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from training.ml.config import dataclass_from_dict


@dataclass(frozen=True)
class Schedule:
    n0: int = 64
    """Labels before the first reward model (and before PPO starts)."""
    n: int = 2000
    """Labels by the end of PPO (N)."""
    episodes: int = 2048
    """PPO episodes in all (N_pi)."""
    retrains: int = 20
    """Reward-model retrains, at evenly spaced label counts from n0 to n."""
    chunk_episodes: int = 256
    """PPO episodes per training run; each run publishes a policy version."""
    buffer: int = 32
    """Unlabeled comparisons from the promoted policy kept open for labelers."""
    lookahead_seconds: int = 180
    """While a training run is live, the buffer is topped up only when its open comparisons
    fall below what labelers started in the last ``lookahead_seconds`` (what they will likely
    take in the next as many), so that sampling does not split the CPU with training."""
    retire_superseded: bool = True
    """Retire unlabeled comparisons of superseded policy versions."""
    auto_promote: bool = True
    """Promote each new policy version as soon as it is published."""

    def __post_init__(self) -> None:
        _check(self.n0 >= 1, "n0", "must be >= 1")
        _check(self.n >= self.n0, "n", "must be >= n0")
        _check(self.episodes >= 1, "episodes", "must be >= 1")
        _check(self.retrains >= 1, "retrains", "must be >= 1")
        _check(self.chunk_episodes >= 1, "chunk_episodes", "must be >= 1")
        _check(self.buffer >= 0, "buffer", "must be >= 0")
        _check(self.lookahead_seconds >= 1, "lookahead_seconds", "must be >= 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Schedule:
        """Validated schedule from a task's JSON; missing keys take the defaults."""
        schedule: Schedule = dataclass_from_dict(cls, data or {}, "schedule")
        return schedule

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"schedule.{name}: {message}")


def labels_required(schedule: Schedule, episode: int) -> int:
    """l(n): labels that must exist before PPO episode ``episode`` (rounded up)."""
    fraction = min(max(episode, 0), schedule.episodes) / schedule.episodes
    value = schedule.n0 + (schedule.n - schedule.n0) * (1 - (1 - fraction) ** 2)
    return math.ceil(value - 1e-9)


def episodes_allowed(schedule: Schedule, label_count: int) -> int:
    """The largest n with l(n) <= label_count (0 below n0, N_pi from n on)."""
    if label_count < schedule.n0:
        return 0
    if label_count >= schedule.n:
        return schedule.episodes
    fraction = (label_count - schedule.n0) / (schedule.n - schedule.n0)
    n = int(schedule.episodes * (1 - math.sqrt(1 - fraction)))
    while n < schedule.episodes and labels_required(schedule, n + 1) <= label_count:
        n += 1
    while n > 0 and labels_required(schedule, n) > label_count:
        n -= 1
    return n


def retrain_thresholds(schedule: Schedule) -> list[int]:
    """Label counts at which the reward model is retrained: evenly spaced from n0 to n."""
    if schedule.retrains == 1 or schedule.n == schedule.n0:
        return [schedule.n0]
    step = (schedule.n - schedule.n0) / (schedule.retrains - 1)
    values = [round(schedule.n0 + i * step) for i in range(schedule.retrains)]
    return sorted(set(values))


def due_retrain_threshold(
    schedule: Schedule, label_count: int, last_trained: int | None
) -> int | None:
    """The threshold to train at now (the highest one reached and not yet trained), or None.

    ``last_trained`` is the label count of the latest reward model (None: no model yet)."""
    reached = [t for t in retrain_thresholds(schedule) if t <= label_count]
    if not reached:
        return None
    threshold = reached[-1]
    if last_trained is not None and last_trained >= threshold:
        return None
    return threshold


def next_chunk_target(schedule: Schedule, episodes_done: int) -> int | None:
    """Episode count at the end of the next PPO chunk, or None when PPO is finished."""
    if episodes_done >= schedule.episodes:
        return None
    return min(episodes_done + schedule.chunk_episodes, schedule.episodes)


def policy_chunk_due(schedule: Schedule, episodes_done: int, label_count: int) -> bool:
    """True when enough labels exist for every episode of the next chunk (l(end) labels)."""
    target = next_chunk_target(schedule, episodes_done)
    return target is not None and labels_required(schedule, target) <= label_count


def retrain_waits_for_first_policy(
    *, episodes_done: int, has_reward_model: bool, policy_due_or_live: bool
) -> bool:
    """True when a due reward-model retrain should wait: no policy beyond v0 exists yet
    (no PPO episode done), a reward model exists, and a PPO chunk is due or already queued
    or running. With one training worker, the retrain would otherwise run first and delay
    the first policy labelers see by a whole retrain; the first reward model never waits."""
    return episodes_done == 0 and has_reward_model and policy_due_or_live


def comparisons_to_sample(
    schedule: Schedule, *, open_count: int, demand: int, training_live: bool
) -> int:
    """How many comparisons a tick asks the sampler for (0: none).

    ``open_count``: unlabeled comparisons of the promoted policy; ``demand``: comparisons
    labelers started (labeled for the first time) in the last ``lookahead_seconds``. The
    buffer is topped up to ``buffer`` once at most half of it is left, so that one job writes
    many comparisons. While a training run is live, the top-up waits as long as the open
    comparisons still cover the demand (sampling would only slow the run that labelers are
    waiting for); an empty buffer is always refilled, for a labeler who arrives."""
    if schedule.buffer <= 0 or open_count > schedule.buffer // 2:
        return 0
    if training_live and open_count > 0 and demand <= open_count:
        return 0
    return schedule.buffer - open_count
