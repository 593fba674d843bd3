"""Tasks, prompts, comparisons of K samples, leases and labels.

Choices are always stored in a comparison's own sample indices (0..K-1); the order in
which a labeler saw the samples is the assignment's permutation.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.lookups import Exact

from labeling.summaries import DEFAULT_TEMPLATE as DEFAULT_QUERY_TEMPLATE

MAX_K = 9  # keys 1..9 on the labeling page


class SelectionStrategy(models.TextChoices):
    """How the sampler chooses the comparisons labelers see (training/ml/selection.py)."""

    UNIFORM = "uniform", "Uniform (the prompts in turn)"
    UNCERTAINTY = "uncertainty", "Uncertainty (where the reward model is least sure)"


class JSONArrayLength(Func):
    """Length of a JSON array, -1 for any other JSON value (SQLite ``json_array_length``;
    PostgreSQL's ``jsonb_array_length`` fails on non-arrays, hence the CASE): for check
    constraints on JSON list fields."""

    function = "JSON_ARRAY_LENGTH"
    arity = 1
    output_field = models.IntegerField()

    def as_sqlite(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(CASE WHEN json_type({sql}) = 'array' THEN json_array_length({sql}) ELSE -1 END)",
            (*params, *params),
        )

    def as_postgresql(self, compiler, connection, **extra_context):  # type: ignore[no-untyped-def]
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"(CASE WHEN jsonb_typeof({sql}) = 'array' THEN jsonb_array_length({sql}) ELSE -1 END)",
            (*params, *params),
        )


class Task(models.Model):
    class Kind(models.TextChoices):
        CONTINUATION = "continuation", "Stylistic continuation"
        SUMMARIZATION = "summarization", "Summarization"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CONTINUATION)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    base_model = models.CharField(
        max_length=300,
        default="embedded:smollm2-135m",
        help_text="HF id, local path, or embedded:smollm2-135m",
    )
    k = models.PositiveSmallIntegerField("K (samples per comparison)", default=4)
    query_length = models.PositiveIntegerField("query length (tokens)", default=64)
    response_length = models.PositiveIntegerField("response length (tokens)", default=24)
    temperature = models.FloatField(default=0.7)
    truncation_token = models.CharField(max_length=16, default=".", blank=True)
    truncation_min_position = models.PositiveIntegerField(default=16)
    labels_per_comparison = models.PositiveSmallIntegerField(
        "labels per comparison (overlap)", default=1
    )
    gold_rate = models.FloatField(
        default=0.0, help_text="fraction of fetches that serve a gold comparison (0..1)"
    )
    label_budget = models.PositiveIntegerField(default=5000)
    lease_seconds = models.PositiveIntegerField(default=600)
    agreement_threshold = models.FloatField(
        default=0.6, help_text="labelers below this gold accuracy are flagged"
    )
    training_settings = models.JSONField(
        default=dict, blank=True, help_text="reward-model and PPO settings (see the preset names)"
    )
    schedule = models.JSONField(
        default=dict, blank=True, help_text="online schedule: n0, n, episodes, retrains"
    )
    query_template = models.CharField(
        max_length=500,
        default=DEFAULT_QUERY_TEMPLATE,
        help_text="summarization: the query built from each imported article ({article} is "
        "replaced by the article, cut to the query length at a sentence boundary)",
    )
    selection_strategy = models.CharField(
        max_length=12,
        choices=SelectionStrategy.choices,
        default=SelectionStrategy.UNIFORM,
        help_text="uncertainty: the sampler samples more prompts and responses than it keeps, "
        "scores them with the current reward model and keeps the prompts and K-sets it is "
        "least sure about: the highest entropy of its K-way choice distribution, or with "
        '"selection": {"measure": "disagreement"} in the training settings (and a reward '
        'ensemble, "reward": {"ensemble_members": 4}) the most disagreement among its members',
    )
    uniform_share = models.FloatField(
        default=0.25,
        help_text="with uncertainty: the fraction (0..1) of each policy version's comparisons "
        "still chosen uniformly, kept apart to measure the reward model without bias and to "
        "follow the paper's online distribution",
    )
    highlight_copies = models.BooleanField(
        default=False,
        help_text="summarization: mark in each summary the spans copied from the article "
        "(recorded with each label)",
    )
    labelers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="TaskLabeler", related_name="labeling_tasks", blank=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(k__gte=2, k__lte=MAX_K), name="task_k_range"),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0, gold_rate__lte=1), name="task_gold_rate_range"
            ),
            models.CheckConstraint(
                condition=Q(labels_per_comparison__gte=1), name="task_overlap_positive"
            ),
            models.CheckConstraint(
                condition=Q(temperature__gt=0), name="task_temperature_positive"
            ),
            models.CheckConstraint(
                condition=Q(query_template__contains="{article}"),
                name="task_query_template_has_article",
            ),
            models.CheckConstraint(
                condition=Q(selection_strategy__in=SelectionStrategy.values),
                name="task_selection_strategy_valid",
            ),
            models.CheckConstraint(
                condition=Q(uniform_share__gte=0, uniform_share__lte=1),
                name="task_uniform_share_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TaskLabeler(models.Model):
    """Which labelers may work on which task."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="memberships")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="task_memberships"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "labeler"], name="task_labeler_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.labeler} on {self.task}"


class InstructionsVersion(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="instructions")
    version = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["task", "version"], name="instructions_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.task} instructions v{self.version}"


class Prompt(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train", "Train"
        EVAL = "eval", "Eval"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField()
    token_ids = models.JSONField(null=True, blank=True)
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.TRAIN)
    external_id = models.CharField(max_length=200, blank=True, default="")
    source = models.TextField(
        blank=True,
        default="",
        help_text="summarization: the article as imported (``text`` is the query built from "
        "it, cut to the query length)",
    )
    reference = models.TextField(
        blank=True, default="", help_text="summarization: a reference summary (for ROUGE)"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["task", "split"])]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "external_id"],
                condition=~Q(external_id=""),
                name="prompt_external_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.text[:60]


class Comparison(models.Model):
    """One prompt with K samples from one policy version."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETE = "complete", "Complete"
        RETIRED = "retired", "Retired"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    k = models.PositiveSmallIntegerField()
    samples = models.JSONField(help_text="K sample texts")
    sample_token_ids = models.JSONField(null=True, blank=True, help_text="K lists of token ids")
    sample_ended = models.JSONField(
        null=True,
        blank=True,
        help_text="K booleans: whether each sample ended under the truncation rule (sampled "
        "comparisons: all true; null: not known, e.g. imported without it)",
    )
    policy_version = models.ForeignKey(
        "training.PolicyVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="comparisons",
    )
    overlap = models.PositiveSmallIntegerField(default=1)
    # Slots still free: overlap minus active leases and counted labels (skips free theirs).
    open_slots = models.PositiveSmallIntegerField(default=1)
    label_count = models.PositiveIntegerField(default=0)
    is_gold = models.BooleanField(default=False)
    gold_choice = models.PositiveSmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    priority = models.FloatField(default=0.0, help_text="higher is served first")
    selection = models.CharField(
        max_length=12,
        choices=SelectionStrategy.choices,
        default=SelectionStrategy.UNIFORM,
        help_text="how the sampler chose it: uniformly, or where the reward model was least sure",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["task", "is_gold", "status", "-priority", "id"], name="comparison_pool"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(k__gte=2, k__lte=MAX_K), name="comparison_k_range"),
            models.CheckConstraint(
                condition=Q(gold_choice__isnull=True) | Q(gold_choice__lt=F("k")),
                name="comparison_gold_choice_in_range",
            ),
            models.CheckConstraint(
                condition=Q(open_slots__lte=F("overlap")), name="comparison_slots_le_overlap"
            ),
            models.CheckConstraint(
                condition=Q(sample_ended__isnull=True)
                | Q(Exact(JSONArrayLength("sample_ended"), F("k"))),
                name="comparison_sample_ended_k",
            ),
            models.CheckConstraint(
                condition=Q(selection__in=SelectionStrategy.values),
                name="comparison_selection_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"comparison {self.pk} of {self.task_id}"


class Assignment(models.Model):
    """A lease of a comparison to a labeler until expires_at."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        SUBMITTED = "submitted", "Submitted"
        EXPIRED = "expired", "Expired"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    permutation = models.JSONField(help_text="display position i shows sample permutation[i]")
    copies_highlighted = models.BooleanField(
        default=False, help_text="the lease shows spans copied from the article (task setting)"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    leased_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["labeler", "task", "state"], name="assignment_labeler_state"),
            models.Index(fields=["state", "expires_at"], name="assignment_expiry"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "labeler"],
                condition=Q(state__in=["active", "submitted"]),
                name="assignment_live_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"lease of {self.comparison_id} to {self.labeler_id} ({self.state})"


class Label(models.Model):
    class Kind(models.TextChoices):
        CHOICE = "choice", "Best sample"
        SKIP = "skip", "Skip"
        NONE_ACCEPTABLE = "none", "None acceptable"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="labels")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="labels"
    )
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="labels")
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="label"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    choice = models.PositiveSmallIntegerField(null=True, blank=True)
    k = models.PositiveSmallIntegerField()
    display_order = models.JSONField(help_text="the permutation the labeler saw")
    copies_highlighted = models.BooleanField(
        default=False, help_text="the labeler saw copied spans marked (from the lease)"
    )
    time_spent_ms = models.PositiveIntegerField(default=0)
    instructions_version = models.ForeignKey(
        InstructionsVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["task", "id"], name="label_task_id")]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "labeler"], name="label_unique"),
            models.CheckConstraint(
                condition=(Q(kind="choice") & Q(choice__isnull=False) & Q(choice__lt=F("k")))
                | (~Q(kind="choice") & Q(choice__isnull=True)),
                name="label_choice_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"label {self.pk} ({self.kind})"
