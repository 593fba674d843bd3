"""Trained artifacts (immutable versions with lineage) and the runs that make them."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q


class VersionStatus(models.TextChoices):
    READY = "ready", "Ready"
    PROMOTED = "promoted", "Promoted"
    RETIRED = "retired", "Retired"
    FAILED = "failed", "Failed"


class RewardModelVersion(models.Model):
    task = models.ForeignKey(
        "labeling.Task", on_delete=models.CASCADE, related_name="reward_model_versions"
    )
    number = models.PositiveIntegerField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    artifact_path = models.CharField(max_length=500, blank=True)
    gain = models.FloatField(default=1.0)
    bias = models.FloatField(default=0.0)
    label_count = models.PositiveIntegerField(default=0)
    labels_used = models.ManyToManyField("labeling.Label", related_name="+", blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=10, choices=VersionStatus.choices, default=VersionStatus.READY
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "number"]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="rm_version_unique"),
        ]

    def __str__(self) -> str:
        return f"RM v{self.number} of {self.task_id}"


class PolicyVersion(models.Model):
    task = models.ForeignKey(
        "labeling.Task", on_delete=models.CASCADE, related_name="policy_versions"
    )
    number = models.PositiveIntegerField(help_text="0 is the base model")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    reward_model_version = models.ForeignKey(
        RewardModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="policy_versions",
    )
    artifact_path = models.CharField(max_length=500, blank=True, help_text="empty: the base model")
    episodes = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    # Responses sampled from this version for comparisons, and how many of them ended under
    # the truncation rule (labelers see only those): the version's ended fraction.
    candidates_sampled = models.PositiveBigIntegerField(default=0)
    candidates_ended = models.PositiveBigIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=VersionStatus.choices, default=VersionStatus.READY
    )
    promoted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "number"]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="policy_version_unique"),
            models.UniqueConstraint(
                fields=["task"], condition=Q(status="promoted"), name="one_promoted_policy"
            ),
            models.CheckConstraint(
                condition=Q(candidates_ended__lte=F("candidates_sampled")),
                name="policy_candidates_ended_le_sampled",
            ),
        ]

    def __str__(self) -> str:
        return f"policy v{self.number} of {self.task_id}"

    @property
    def ended_fraction(self) -> float | None:
        """Fraction of the responses sampled for comparisons that ended (None: none yet)."""
        if not self.candidates_sampled:
            return None
        return self.candidates_ended / self.candidates_sampled


class TrainingRun(models.Model):
    class Kind(models.TextChoices):
        REWARD = "reward", "Reward model"
        POLICY = "policy", "Policy"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    task = models.ForeignKey("labeling.Task", on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    target_label_count = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    metrics = models.JSONField(default=list, blank=True, help_text="metrics over time")
    progress = models.FloatField(
        null=True, blank=True, help_text="fraction of the run's work done (0..1) while it runs"
    )
    error = models.TextField(blank=True)
    reward_model_version = models.ForeignKey(
        RewardModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    policy_version = models.ForeignKey(
        PolicyVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "kind"],
                condition=Q(status__in=["queued", "running"]),
                name="one_live_run_per_task_and_kind",
            ),
            models.CheckConstraint(
                condition=Q(progress__isnull=True) | Q(progress__gte=0, progress__lte=1),
                name="run_progress_is_a_fraction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} run {self.pk} ({self.status})"


class ComparisonScores(models.Model):
    """A reward-model version's scores of a comparison's K samples (written by workers)."""

    comparison = models.ForeignKey(
        "labeling.Comparison", on_delete=models.CASCADE, related_name="reward_scores"
    )
    reward_model_version = models.ForeignKey(
        RewardModelVersion, on_delete=models.CASCADE, related_name="comparison_scores"
    )
    scores = models.JSONField(help_text="K normalized rewards, in the comparison's sample order")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "reward_model_version"], name="comparison_scores_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"RM {self.reward_model_version_id} scores of comparison {self.comparison_id}"


class EvalSample(models.Model):
    """A policy version's answer to an eval prompt, for the side-by-side sample browser."""

    policy_version = models.ForeignKey(
        PolicyVersion, on_delete=models.CASCADE, related_name="eval_samples"
    )
    prompt = models.ForeignKey("labeling.Prompt", on_delete=models.CASCADE, related_name="+")
    text = models.TextField()
    token_ids = models.JSONField(null=True, blank=True)
    reward = models.FloatField(null=True, blank=True, help_text="normalized reward-model score")
    ended = models.BooleanField(
        null=True, blank=True, help_text="the response ended under the truncation rule"
    )
    reward_model_version = models.ForeignKey(
        RewardModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["prompt_id", "policy_version_id"]
        indexes = [models.Index(fields=["policy_version", "prompt"])]

    def __str__(self) -> str:
        return f"policy {self.policy_version_id} on prompt {self.prompt_id}"
