"""The researchers' admin: tasks (validated settings, versioned instructions, labelers),
prompt and comparison imports, comparisons with gold labeling, labels (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from labeling.forms import ComparisonImportForm, GoldChoiceForm, PromptImportForm, TaskAdminForm
from labeling.importers import ImportFileError, detect_format
from labeling.models import Assignment, Comparison, InstructionsVersion, Label, Prompt, Task
from labeling.models import TaskLabeler as TaskLabelerModel
from labeling.services import imports as import_services
from labeling.services.tasks import set_gold_choice, set_instructions


def _form_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    template: str,
    *,
    title: str,
    original: Any,
    form: Any,
    **extra: Any,
) -> TemplateResponse:
    """An admin page around a form: 200 when shown, 400 when a submission was refused."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "original": original,
        "form": form,
        **extra,
    }
    status = 400 if request.method == "POST" else 200
    return TemplateResponse(request, template, context, status=status)


class TaskLabelerInline(admin.TabularInline):
    model = TaskLabelerModel
    extra = 1
    autocomplete_fields = ["labeler"]
    readonly_fields = ["added_at"]
    verbose_name = "labeler"
    verbose_name_plural = "Labelers (who may work on this task)"


class InstructionsVersionInline(admin.TabularInline):
    """Read-only history: new versions come from the task form's instructions field."""

    model = InstructionsVersion
    extra = 0
    fields = ["version", "text", "created_at"]
    readonly_fields = ["version", "text", "created_at"]
    can_delete = False
    verbose_name_plural = "Instructions history (edit the text above to create a new version)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    form = TaskAdminForm
    change_form_template = "admin/labeling/task/change_form.html"
    list_display = [
        "name",
        "kind",
        "status",
        "k",
        "labels_per_comparison",
        "label_budget",
        "selection_strategy",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [TaskLabelerInline, InstructionsVersionInline]
    fieldsets = [
        (None, {"fields": ["name", "kind", "status", "base_model", "instructions_text"]}),
        (
            "Generation",
            {
                "fields": [
                    "k",
                    "query_length",
                    "response_length",
                    "temperature",
                    "truncation_token",
                    "truncation_min_position",
                ]
            },
        ),
        (
            "Labeling",
            {
                "fields": [
                    "labels_per_comparison",
                    "gold_rate",
                    "label_budget",
                    "lease_seconds",
                    "agreement_threshold",
                ]
            },
        ),
        (
            "Selection",
            {
                "fields": ["selection_strategy", "uniform_share"],
                "description": "Which comparisons labelers see. Uncertainty samples more "
                "prompts and responses than it keeps (pool factor and responses per prompt: "
                'the training settings\' "selection" object) and keeps those the current '
                "reward model is least sure about; the uniform share is still chosen "
                "uniformly, and the dashboard measures the reward model on it.",
            },
        ),
        (
            "Summarization",
            {
                "fields": ["query_template", "highlight_copies"],
                "description": "For summarization tasks: imported articles become queries "
                "through the template; labelers may see copied spans marked.",
            },
        ),
        ("Training", {"fields": ["training_settings", "schedule"]}),
        (None, {"fields": ["created_by", "created_at", "updated_at"]}),
    ]

    def save_model(self, request: HttpRequest, obj: Task, form: Any, change: bool) -> None:
        if not change and getattr(obj, "created_by_id", None) is None:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        created = set_instructions(task=form.instance, text=form.cleaned_data["instructions_text"])
        if created is not None:
            messages.info(request, f"Saved instructions as version {created.version}.")

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:task_id>/import-prompts/",
                wrap(self.import_prompts_view),
                name="labeling_task_import_prompts",
            ),
            path(
                "<int:task_id>/import-comparisons/",
                wrap(self.import_comparisons_view),
                name="labeling_task_import_comparisons",
            ),
            *super().get_urls(),
        ]

    def import_prompts_view(self, request: HttpRequest, task_id: int) -> HttpResponse:
        return self._import_view(request, task_id, PromptImportForm, "prompt", "prompts")

    def import_comparisons_view(self, request: HttpRequest, task_id: int) -> HttpResponse:
        return self._import_view(
            request, task_id, ComparisonImportForm, "comparison", "comparisons"
        )

    def _import_view(
        self, request: HttpRequest, task_id: int, form_class: type, model: str, what: str
    ) -> HttpResponse:
        user: Any = request.user
        if not user.has_perm(f"labeling.add_{model}"):
            raise PermissionDenied
        task = get_object_or_404(Task, pk=task_id)
        form = form_class(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = self._run_import(task, what, form)
            except ImportFileError as error:
                form.add_error("file", f"Nothing was imported. {error}")
            else:
                messages.success(
                    request,
                    f"Imported {result.rows} {what} into “{task}” "
                    f"({result.prompts_created} new prompts).",
                )
                return HttpResponseRedirect(reverse("admin:labeling_task_change", args=[task.pk]))
        return _form_page(
            self,
            request,
            "admin/labeling/import_form.html",
            title=f"Import {what} into “{task}”",
            original=task,
            form=form,
            what=what,
            task=task,
        )

    @staticmethod
    def _run_import(task: Task, what: str, form: Any) -> import_services.ImportResult:
        upload = form.cleaned_data["file"]
        file_format = detect_format(upload.name)
        upload.seek(0)
        if what == "prompts":
            return import_services.import_prompts(
                task=task,
                stream=upload,
                file_format=file_format,
                split=form.cleaned_data.get("split") or None,
            )
        if file_format != "jsonl":
            raise ImportFileError("comparisons are imported from JSONL files")
        return import_services.import_comparisons(task=task, stream=upload)


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "short_text", "task", "split", "external_id", "created_at"]
    list_filter = ["task", "split"]
    search_fields = ["text", "external_id"]
    list_select_related = ["task"]
    readonly_fields = ["created_at"]

    @admin.display(description="text")
    def short_text(self, obj: Prompt) -> str:
        return obj.text[:80]


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "task",
        "prompt_text",
        "status",
        "is_gold",
        "gold_display",
        "policy_version",
        "selection",
        "label_count",
        "open_slots",
        "gold_link",
    ]
    list_filter = ["task", "status", "is_gold", "selection", "policy_version"]
    search_fields = ["prompt__text"]
    list_select_related = ["task", "prompt", "policy_version"]
    readonly_fields = [
        "task",
        "prompt",
        "k",
        "samples",
        "sample_token_ids",
        "sample_ended",
        "policy_version",
        "selection",
        "overlap",
        "open_slots",
        "label_count",
        "is_gold",
        "gold_choice",
        "created_at",
    ]
    actions = ["label_gold", "retire"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # comparisons come from imports and from the policy's samples

    @admin.display(description="prompt")
    def prompt_text(self, obj: Comparison) -> str:
        return obj.prompt.text[:60]

    @admin.display(description="gold (1-based)")
    def gold_display(self, obj: Comparison) -> str:
        return "" if obj.gold_choice is None else str(obj.gold_choice + 1)

    @admin.display(description="gold label")
    def gold_link(self, obj: Comparison) -> str:
        url = reverse("admin:labeling_comparison_gold", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, "relabel" if obj.is_gold else "label")

    @admin.action(description="Label selected comparisons as gold", permissions=["change"])
    def label_gold(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        ids = list(queryset.order_by("id").values_list("id", flat=True)[:500])
        url = reverse("admin:labeling_comparison_gold", args=[ids[0]])
        return HttpResponseRedirect(f"{url}?queue={','.join(map(str, ids[1:]))}")

    @admin.action(description="Retire selected comparisons", permissions=["change"])
    def retire(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.update(status=Comparison.Status.RETIRED, open_slots=0)
        messages.success(request, f"Retired {count} comparisons.")

    def get_urls(self) -> list:
        return [
            path(
                "<int:comparison_id>/gold/",
                self.admin_site.admin_view(self.gold_view),
                name="labeling_comparison_gold",
            ),
            *super().get_urls(),
        ]

    def gold_view(self, request: HttpRequest, comparison_id: int) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        comparison = get_object_or_404(
            Comparison.objects.select_related("task", "prompt"), pk=comparison_id
        )
        queue = [int(x) for x in request.GET.get("queue", "").split(",") if x.isdigit()]
        form = GoldChoiceForm(request.POST or None, k=comparison.k)
        if request.method == "POST" and form.is_valid():
            choice = None if form.cleaned_data["clear"] else form.cleaned_data["choice"]
            try:
                set_gold_choice(comparison=comparison, choice=choice)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(
                    request,
                    f"Comparison {comparison.pk}: "
                    + ("removed from gold." if choice is None else f"gold is {choice + 1}."),
                )
                return HttpResponseRedirect(self._after_gold(request, queue))
        return _form_page(
            self,
            request,
            "admin/labeling/comparison/gold.html",
            title=f"Gold label for comparison {comparison.pk}",
            original=comparison,
            form=form,
            comparison=comparison,
            samples=[(i, i + 1, text) for i, text in enumerate(comparison.samples)],
            remaining=len(queue),
        )

    @staticmethod
    def _after_gold(request: HttpRequest, queue: list[int]) -> str:
        if queue:
            url = reverse("admin:labeling_comparison_gold", args=[queue[0]])
            return f"{url}?queue={','.join(map(str, queue[1:]))}"
        fallback = reverse("admin:labeling_comparison_changelist")
        target = request.GET.get("next", fallback)
        ok = url_has_allowed_host_and_scheme(target, {request.get_host()})
        return target if ok else fallback


class ReadOnlyAdmin(admin.ModelAdmin):
    """Collected data: visible to researchers, never edited in the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Label)
class LabelAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "task",
        "labeler",
        "kind",
        "choice",
        "comparison",
        "time_spent_ms",
        "instructions_version",
        "created_at",
    ]
    list_filter = ["task", "labeler", "kind"]
    list_select_related = ["task", "labeler", "instructions_version"]
    search_fields = ["labeler__username"]


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "labeler", "comparison", "state", "leased_at", "expires_at"]
    list_filter = ["task", "state"]
    list_select_related = ["task", "labeler"]
