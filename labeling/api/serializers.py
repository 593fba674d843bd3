"""Request and response shapes of the labeling API (see the contract in the API views)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling.models import Assignment, Label, Task
from labeling.selectors import Progress
from labeling.summaries import article_of
from labeling.textstats import copied_spans


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class ProgressSerializer(serializers.Serializer):
    labeled_by_me = serializers.IntegerField()
    remaining = serializers.IntegerField()


class InstructionsSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    text = serializers.CharField()


class TaskSerializer(serializers.ModelSerializer):
    """A task annotated by ``selectors.task_list_for_user``."""

    instructions = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = ["id", "name", "kind", "k", "instructions", "progress"]

    @extend_schema_field(InstructionsSerializer(allow_null=True))
    def get_instructions(self, task: Any) -> dict[str, Any] | None:
        if task.instructions_version is None:
            return None
        return {"version": task.instructions_version, "text": task.instructions_text}

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, task: Any) -> dict[str, int]:
        return {"labeled_by_me": task.labeled_by_me, "remaining": task.remaining}


class SampleSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="the comparison's own sample index")
    text = serializers.CharField()
    copied = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        allow_null=True,
        help_text="[start, end) character ranges of the text copied from the article (word "
        "3-grams found in it), when the lease highlights copies; else null",
    )


class LeaseSerializer(serializers.Serializer):
    """A lease: samples in the labeler's display order, each with its own sample index."""

    assignment_id = serializers.IntegerField()
    comparison_id = serializers.IntegerField()
    task_id = serializers.IntegerField()
    prompt = serializers.CharField()
    article = serializers.CharField(
        allow_null=True,
        help_text="summarization tasks: the article the summaries are of (the prompt without "
        "the task's query template); null for other tasks",
    )
    copies_highlighted = serializers.BooleanField(
        help_text="the samples carry the spans copied from the article (a task setting, "
        "recorded with the label)"
    )
    samples = SampleSerializer(many=True)
    expires_at = serializers.DateTimeField()
    progress = ProgressSerializer()

    @staticmethod
    def payload(assignment: Assignment, progress: Progress) -> dict[str, Any]:
        """The response body as plain JSON types, exactly what ``LeaseSerializer(...).data``
        gives (the hot path skips the serializer: this class documents the schema)."""
        comparison = assignment.comparison
        task = assignment.task
        prompt = comparison.prompt.text
        summarization = task.kind == Task.Kind.SUMMARIZATION
        highlight = assignment.copies_highlighted

        def copied(text: str) -> list[list[int]] | None:
            return [list(span) for span in copied_spans(prompt, text)] if highlight else None

        return {
            "assignment_id": assignment.pk,
            "comparison_id": comparison.pk,
            "task_id": assignment.task_id,
            "prompt": prompt,
            "article": article_of(prompt, task.query_template) if summarization else None,
            "copies_highlighted": highlight,
            "samples": [
                {"index": i, "text": comparison.samples[i], "copied": copied(comparison.samples[i])}
                for i in assignment.permutation
            ],
            "expires_at": iso_datetime(assignment.expires_at),
            "progress": {
                "labeled_by_me": int(progress["labeled_by_me"]),
                "remaining": int(progress["remaining"]),
            },
        }


def iso_datetime(value: datetime) -> str:
    """A datetime as DRF's ``DateTimeField`` renders it (ISO 8601, UTC as "Z")."""
    value = timezone.localtime(value) if timezone.is_aware(value) else value
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class LabelSubmitSerializer(serializers.Serializer):
    comparison_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    kind = serializers.ChoiceField(choices=Label.Kind.choices)
    choice = serializers.IntegerField(
        min_value=0,
        allow_null=True,
        required=False,
        default=None,
        help_text="the comparison's sample index for kind 'choice', null otherwise",
    )
    time_spent_ms = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)


class LabelSerializer(serializers.ModelSerializer):
    comparison_id = serializers.IntegerField()
    task_id = serializers.IntegerField()
    instructions_version = serializers.SerializerMethodField()

    class Meta:
        model = Label
        fields = [
            "id",
            "comparison_id",
            "task_id",
            "kind",
            "choice",
            "display_order",
            "copies_highlighted",
            "time_spent_ms",
            "instructions_version",
            "created_at",
        ]

    def get_instructions_version(self, label: Label) -> int | None:
        iv = label.instructions_version
        return iv.version if iv is not None else None


def label_payload(label: Label) -> dict[str, Any]:
    """``LabelSerializer(label).data`` as plain JSON types, without the serializer's cost."""
    iv = label.instructions_version
    return {
        "id": label.pk,
        "comparison_id": label.comparison_id,
        "task_id": label.task_id,
        "kind": label.kind,
        "choice": label.choice,
        "display_order": label.display_order,
        "copies_highlighted": label.copies_highlighted,
        "time_spent_ms": label.time_spent_ms,
        "instructions_version": iv.version if iv is not None else None,
        "created_at": iso_datetime(label.created_at),
    }
