"""Admin of model versions and training runs (staff only). Versions are immutable here; the
promote / roll back actions call the services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from training import services
from training.models import PolicyVersion, RewardModelVersion, TrainingRun


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(PolicyVersion)
class PolicyVersionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "task",
        "status",
        "episodes",
        "reward_model_version",
        "parent",
        "promoted_at",
        "created_at",
    ]
    list_filter = ["status", "task"]
    readonly_fields = [f.name for f in PolicyVersion._meta.fields]
    actions = ["promote", "roll_back"]

    @admin.action(description="Promote the selected version (new comparisons come from it)")
    def promote(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        version = queryset.get()
        try:
            services.promote_policy_version(version=version)
        except (services.VersionError, ValueError) as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, f"{version} promoted.", messages.SUCCESS)

    @admin.action(description="Roll back the promoted version of the selected versions' task")
    def roll_back(self, request: HttpRequest, queryset: QuerySet[PolicyVersion]) -> None:
        tasks = {version.task for version in queryset.select_related("task")}
        for task in tasks:
            try:
                version = services.rollback_policy(task=task)
            except (services.VersionError, ValueError) as error:
                self.message_user(request, f"{task}: {error}", messages.ERROR)
                continue
            self.message_user(request, f"{task}: rolled back to {version}.", messages.SUCCESS)


@admin.register(RewardModelVersion)
class RewardModelVersionAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "task",
        "status",
        "label_count",
        "held_out_accuracy",
        "gain",
        "bias",
        "created_at",
    ]
    list_filter = ["status", "task"]
    readonly_fields = [f.name for f in RewardModelVersion._meta.fields]
    exclude = ["labels_used"]

    @admin.display(description="held-out accuracy")
    def held_out_accuracy(self, obj: RewardModelVersion) -> str:
        value = (obj.metrics or {}).get("held_out_accuracy")
        return "-" if value is None else f"{value:.3f}"


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "task",
        "kind",
        "status",
        "attempts",
        "worker",
        "heartbeat_at",
        "started_at",
        "finished_at",
    ]
    list_filter = ["kind", "status", "task"]
    readonly_fields = [f.name for f in TrainingRun._meta.fields]
