"""Training settings as validated dataclasses (the named presets: presets.py).

This module imports neither torch nor Django: the web process (Django admin) calls
:func:`TrainingConfig.from_dict` to validate a task's training settings stored as JSON.

Layout of the JSON object (every key optional, missing keys take the defaults)::

    {"sampling": {...SamplingConfig...}, "reward": {...RewardConfig...}, "ppo": {...PPOConfig...},
     "selection": {...SelectionConfig...}}

Unknown keys and bad values raise ``ValueError`` with the dotted path of the offending field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Self

from .selection import DISAGREEMENT, SelectionConfig


@dataclass
class SamplingConfig:
    """How responses are sampled from a policy."""

    k: int = 4
    """Responses sampled per query (best-of-K labels)."""
    query_length: int = 64
    """Maximum query tokens; longer queries keep their last ``query_length`` tokens."""
    response_length: int = 24
    """Maximum sampled tokens per response."""
    temperature: float = 0.7
    """Logits are divided by this when sampling and when scoring (PPO)."""
    truncate_token: str | None = "."
    """A response ends after the first token whose text ends with this string, at or after
    ``truncate_after``; a whitespace string (summarization's "\\n") ends it at any token that
    holds it. ``None`` disables truncation (every response counts as ended)."""
    truncate_after: int = 16
    """0-based response position from which a truncation token may end the response."""
    batch_size: int = 8
    """Queries per sampling forward pass (each expands to ``k`` rows after the prompt pass)."""

    def validate(self) -> None:
        _check(self.k >= 1, "k", "must be >= 1")
        _check(self.query_length >= 1, "query_length", "must be >= 1")
        _check(self.response_length >= 1, "response_length", "must be >= 1")
        _check(self.temperature > 0, "temperature", "must be > 0")
        _check(self.truncate_token != "", "truncate_token", "must be non-empty or null")
        _check(self.truncate_after >= 0, "truncate_after", "must be >= 0")
        _check(
            self.truncate_after < self.response_length,
            "truncate_after",
            "must be < response_length",
        )
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")


@dataclass
class RewardConfig:
    """Reward-model training on best-of-K labels (one pass, linear LR decay)."""

    learning_rate: float = 5e-5
    batch_size: int = 32
    """Labels per optimizer step."""
    micro_batch_size: int = 8
    """Labels per forward/backward pass (gradient accumulation up to ``batch_size``)."""
    epochs: int = 1
    """Passes over the labels (the paper: 1)."""
    lora_rank: int = 0
    """0 trains the whole trunk; > 0 trains LoRA adapters of this rank plus the head."""
    lora_alpha: float = 16.0
    trainable_layers: int = 0
    """0 trains every layer (or LoRA, see ``lora_rank``); n > 0 freezes the embeddings and all but
    the top n transformer blocks, which train with the final norm and the head. The frozen
    trunk runs without building an autograd graph, so a label costs about a forward pass plus
    the top blocks' backward: the CPU presets' way to afford thousands of labels."""
    warm_start: bool = False
    """Start from the previous reward model instead of the pretrained LM (CPU budgets)."""
    replay_ratio: float = 1.0
    """With ``warm_start``: a retrain passes over the labels that arrived since the previous
    reward model plus at most ``replay_ratio`` times as many older labels drawn at random
    (bounded replay). Without the bound every retrain would revisit every early label, about
    20 times over a run of 20 retrains; with it a label is seen about 1 + replay_ratio times
    in expectation. Ignored when training from the pretrained LM (the paper: all labels)."""
    holdout_fraction: float = 0.0
    """Fraction of labels held out to report accuracy (0: train on every label; online, the
    loop reports prospective accuracy on labels that arrive after a model was trained)."""
    normalization_samples: int = 256
    """Samples of the original policy used to set gain and bias (mean 0, std 1)."""
    weight_decay: float = 0.0
    mixed_precision: str = "off"
    """"off" (float32), "bf16" (autocast over float32 master weights, any device) or "auto"
    (bf16 on CUDA devices that support it: the paper presets); see precision.py."""
    ensemble_members: int = 1
    """Reward heads over the shared trunk: each trains on its own bootstrap weights of the
    labels (double or nothing, drawn per label) and the reward is their mean. 2 or more let the
    sampler choose comparisons by the members' disagreement (``selection.measure``)."""
    seed: int = 0

    def validate(self) -> None:
        _check(self.learning_rate > 0, "learning_rate", "must be > 0")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(self.micro_batch_size >= 1, "micro_batch_size", "must be >= 1")
        _check(self.mixed_precision in PRECISIONS, "mixed_precision", _PRECISION_HELP)
        _check(
            self.batch_size % self.micro_batch_size == 0,
            "batch_size",
            "must be a multiple of micro_batch_size",
        )
        _check(self.epochs >= 1, "epochs", "must be >= 1")
        _check(self.lora_rank >= 0, "lora_rank", "must be >= 0")
        _check(self.lora_alpha > 0, "lora_alpha", "must be > 0")
        _check(self.trainable_layers >= 0, "trainable_layers", "must be >= 0")
        _check(
            not (self.trainable_layers and self.lora_rank),
            "trainable_layers",
            "cannot be combined with lora_rank (choose top blocks or LoRA)",
        )
        _check(self.replay_ratio >= 0, "replay_ratio", "must be >= 0")
        _check(0 <= self.holdout_fraction < 1, "holdout_fraction", "must be in [0, 1)")
        _check(self.normalization_samples >= 2, "normalization_samples", "must be >= 2")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(self.ensemble_members >= 1, "ensemble_members", "must be >= 1")


@dataclass
class PPOConfig:
    """PPO with a KL penalty to the reference (original) policy."""

    batch_size: int = 512
    """Episodes (query, response) per PPO batch; also the KL controller's step size."""
    minibatch_size: int = 512
    """Episodes per optimizer step (the paper: the whole batch, 4 steps per batch)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches per minibatch (micro-batch = minibatch_size / this); with N processes
    each runs its 1/N of them (micro-batches keep their size)."""
    ppo_epochs: int = 4
    learning_rate: float = 1e-5
    lr_decay: bool = True
    """Linear decay to 0 over ``total_episodes``."""
    total_episodes: int = 2_000_000
    adam_eps: float = 1e-5
    clip_range: float = 0.2
    value_clip_range: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    whiten_rewards: bool = True
    """Whiten per-token rewards without shifting their mean."""
    init_kl_coef: float = 0.15
    adaptive_kl: bool = True
    """False keeps beta fixed at ``init_kl_coef``."""
    kl_target: float = 6.0
    kl_horizon: int | None = None
    """Episodes over which the adaptive controller may move beta by a factor of about
    e^0.2 (beta <- beta * (1 + clip(KL / target - 1, +-0.2) * batch / horizon)). The paper
    used 10,000 for runs of about a million episodes. ``None`` scales it to the run:
    ``total_episodes / 10`` (at least one batch), so beta can move by up to e^2 over a run of
    any length; a fixed 10,000 would leave beta where it started in a 2,048-episode run."""
    kl_hold_until_target: bool = False
    """Beta does not fall before the KL first reaches the target (runs start at KL 0)."""
    penalty_reward: float = -1.0
    """Score given to responses without a truncation token."""
    lora_rank: int = 0
    """0 trains the whole policy (a frozen copy is the reference); > 0 trains LoRA and the
    reference is the same model with the adapter disabled."""
    lora_alpha: float = 16.0
    mixed_precision: str = "off"
    """As RewardConfig's: rollouts, scoring and the PPO epochs' forward passes."""
    seed: int = 0

    def horizon(self) -> int:
        """The adaptive KL controller's horizon in episodes (see ``kl_horizon``)."""
        if self.kl_horizon is not None:
            return self.kl_horizon
        return max(self.batch_size, self.total_episodes // 10)

    def validate(self) -> None:
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(self.minibatch_size >= 1, "minibatch_size", "must be >= 1")
        _check(
            self.batch_size % self.minibatch_size == 0,
            "batch_size",
            "must be a multiple of minibatch_size",
        )
        _check(
            self.gradient_accumulation_steps >= 1
            and self.minibatch_size % self.gradient_accumulation_steps == 0,
            "gradient_accumulation_steps",
            "must be >= 1 and divide minibatch_size",
        )
        _check(self.ppo_epochs >= 1, "ppo_epochs", "must be >= 1")
        _check(self.learning_rate > 0, "learning_rate", "must be > 0")
        _check(self.total_episodes >= self.batch_size, "total_episodes", "must be >= batch_size")
        _check(self.adam_eps > 0, "adam_eps", "must be > 0")
        _check(self.clip_range > 0, "clip_range", "must be > 0")
        _check(self.value_clip_range > 0, "value_clip_range", "must be > 0")
        _check(self.vf_coef >= 0, "vf_coef", "must be >= 0")
        _check(0 <= self.gamma <= 1, "gamma", "must be in [0, 1]")
        _check(0 <= self.lam <= 1, "lam", "must be in [0, 1]")
        _check(self.init_kl_coef >= 0, "init_kl_coef", "must be >= 0")
        _check(self.kl_target > 0, "kl_target", "must be > 0")
        _check(self.kl_horizon is None or self.kl_horizon >= 1, "kl_horizon", "must be >= 1")
        _check(self.lora_rank >= 0, "lora_rank", "must be >= 0")
        _check(self.lora_alpha > 0, "lora_alpha", "must be > 0")
        _check(self.mixed_precision in PRECISIONS, "mixed_precision", _PRECISION_HELP)


@dataclass
class TrainingConfig:
    """Everything a task needs to sample, train the reward model and run PPO."""

    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    """Which comparisons labelers see (a task's strategy and uniform share fields win)."""

    def validate(self) -> None:
        for name in ("sampling", "reward", "ppo", "selection"):
            try:
                getattr(self, name).validate()
            except ValueError as error:
                raise ValueError(f"{name}.{error}") from None
        if self.selection.measure == DISAGREEMENT and self.reward.ensemble_members < 2:
            raise ValueError(
                "selection.measure: disagreement needs an ensemble (reward.ensemble_members >= 2)"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: str | TrainingConfig | None = None) -> Self:
        """Build and validate from JSON-like data; missing keys come from ``base``
        (a preset name or a config; default: the dataclass defaults)."""
        from .presets import preset  # presets build these dataclasses

        start = preset(base) if isinstance(base, str) else base
        config = dataclass_from_dict(cls, data, "", start)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{name}: {message}")


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return False


def dataclass_from_dict(cls: Any, data: Any, path: str = "", start: Any = None) -> Any:
    """An instance of the dataclass ``cls`` from JSON-like ``data``: unknown keys and values
    of the wrong type raise ValueError naming the dotted path (``path`` prefixes it); nested
    dataclass fields recurse; a missing key takes its value from ``start`` (an instance) or
    the field's default. The dataclass's own checks (``__post_init__``) still apply; a
    ``validate()`` method is the caller's to run."""
    if not isinstance(data, dict):
        raise ValueError(f"{path or 'config'}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        raise ValueError(f"{where}{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    kwargs: dict[str, Any] = {}
    for name in names:
        dotted = f"{path}.{name}" if path else name
        annotation = hints[name]
        default = getattr(start, name) if start is not None else None
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = dataclass_from_dict(annotation, data.get(name, {}), dotted, default)
        elif name in data:
            value = data[name]
            if not _type_ok(value, annotation):
                expected = getattr(annotation, "__name__", str(annotation))
                raise ValueError(f"{dotted}: expected {expected}, got {value!r}")
            if annotation is float:
                value = float(value)
            kwargs[name] = value
        elif start is not None:
            kwargs[name] = default
    return cls(**kwargs)


PRECISIONS = ("off", "bf16", "auto")
_PRECISION_HELP = "must be one of off, bf16, auto"
