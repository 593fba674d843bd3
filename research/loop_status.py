"""What the loop is doing now and what comes next, in words, for the dashboard: the live
training runs with their progress, the open comparisons, and the next reward model and policy
version with the labels they wait for (the rules of training/schedule.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from labeling.models import Task
from training import schedule as loop_schedule
from training import selectors as training_selectors
from training.models import PolicyVersion, RewardModelVersion, TrainingRun


@dataclass
class LoopStatus:
    now: list[str] = field(default_factory=list)
    next: list[str] = field(default_factory=list)


def _progress(run: TrainingRun) -> str:
    if run.status == TrainingRun.Status.QUEUED:
        return "queued, waiting for a training worker"
    return "starting" if run.progress is None else f"{run.progress:.0%}"


def _to_go(needed: int, label_count: int) -> str:
    if needed <= label_count:
        return f"due now ({needed} labels reached)"
    return f"at {needed} labels ({needed - label_count} to go)"


def loop_status(*, task: Task) -> LoopStatus:
    status = LoopStatus()
    try:
        schedule = training_selectors.task_schedule(task=task)
    except ValueError as error:
        status.now.append(f"Stopped: invalid schedule ({error}).")
        return status
    labels = training_selectors.training_label_count(task_id=task.pk)
    reward_model = training_selectors.latest_reward_model(task_id=task.pk)
    head = training_selectors.ppo_head(task_id=task.pk)
    done = head.episodes if head is not None else 0
    # Reward models count from v1, policies from v0 (the base model).
    next_rm = training_selectors.next_version_number(model=RewardModelVersion, task_id=task.pk)
    next_rm = next_rm or 1
    next_policy = training_selectors.next_version_number(model=PolicyVersion, task_id=task.pk)
    next_policy = max(1, next_policy)
    target = loop_schedule.next_chunk_target(schedule, done)
    live = {run.kind: run for run in training_selectors.live_runs(task_id=task.pk)}

    if task.status != Task.Status.ACTIVE:
        status.now.append(f"Paused: the task is {task.get_status_display().lower()}.")
    reward_run, policy_run = live.get(TrainingRun.Kind.REWARD), live.get(TrainingRun.Kind.POLICY)
    if reward_run is not None:
        status.now.append(
            f"Training reward model v{next_rm} on {reward_run.target_label_count} labels: "
            f"{_progress(reward_run)}."
        )
    if policy_run is not None:
        against = f" against reward model v{reward_model.number}" if reward_model else ""
        episodes = f"PPO episodes {done} → {target}" if target is not None else "PPO"
        status.now.append(
            f"Training policy v{next_policy} ({episodes}{against}): {_progress(policy_run)}."
        )
    promoted = training_selectors.promoted_policy(task_id=task.pk)
    if promoted is not None:
        open_count = training_selectors.open_comparison_count(
            task_id=task.pk, policy_version_id=promoted.pk
        )
        status.now.append(
            f"{open_count} unlabeled comparison{'s' if open_count != 1 else ''} from policy "
            f"v{promoted.number} open for labelers."
        )
    if reward_run is None and policy_run is None and task.status == Task.Status.ACTIVE:
        status.now.append("No model is training: the loop waits for labels.")

    if policy_run is None:
        if target is None:
            status.next.append(f"PPO is complete ({done} of {schedule.episodes} episodes).")
        else:
            needed = loop_schedule.labels_required(schedule, target)
            after = "" if reward_model is not None else " after the first reward model,"
            status.next.append(
                f"Policy v{next_policy} (PPO episodes {done} → {target}):{after} "
                f"{_to_go(needed, labels)}."
            )
    if reward_run is None:
        trained = reward_model.label_count if reward_model is not None else None
        upcoming = [
            t for t in loop_schedule.retrain_thresholds(schedule) if trained is None or t > trained
        ]
        if upcoming:
            due = loop_schedule.due_retrain_threshold(schedule, labels, trained)
            needed = due if due is not None else upcoming[0]
            policy_due = target is not None and (
                loop_schedule.labels_required(schedule, target) <= labels
            )
            waits = due is not None and loop_schedule.retrain_waits_for_first_policy(
                episodes_done=done,
                has_reward_model=reward_model is not None,
                policy_due_or_live=policy_run is not None or policy_due,
            )
            note = f", after policy v{next_policy}" if waits else ""
            status.next.append(f"Reward model v{next_rm}: {_to_go(needed, labels)}{note}.")
        else:
            status.next.append("All reward-model retrains of the schedule are done.")
    return status
