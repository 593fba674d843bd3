"""Writes of the training loop (keyword-only, typed, atomic). Reads are in training.selectors."""

from training.services.comparisons import (
    EvalRow,
    SampledComparison,
    SamplingCounts,
    create_comparisons,
    record_sampling,
    sampling_deficit,
    store_comparison_scores,
    store_eval_samples,
)
from training.services.loop import TickResult, tick
from training.services.runs import (
    append_run_metrics,
    claim_run,
    fail_run,
    heartbeat,
    reap_stale_runs,
    schedule_run,
    set_checkpoint,
    set_run_progress,
    succeed_run_without_output,
)
from training.services.versions import (
    VersionError,
    ensure_base_policy,
    promote_policy_version,
    publish_policy_version,
    publish_reward_model_version,
    record_prospective_accuracy,
    retire_superseded_comparisons,
    rollback_policy,
)

__all__ = [
    "EvalRow",
    "SampledComparison",
    "SamplingCounts",
    "TickResult",
    "VersionError",
    "append_run_metrics",
    "claim_run",
    "create_comparisons",
    "ensure_base_policy",
    "fail_run",
    "heartbeat",
    "promote_policy_version",
    "publish_policy_version",
    "publish_reward_model_version",
    "reap_stale_runs",
    "record_prospective_accuracy",
    "record_sampling",
    "retire_superseded_comparisons",
    "rollback_policy",
    "sampling_deficit",
    "schedule_run",
    "set_checkpoint",
    "set_run_progress",
    "store_comparison_scores",
    "store_eval_samples",
    "succeed_run_without_output",
    "tick",
]
