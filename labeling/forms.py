"""Forms of the researchers' admin (validation delegates to labeling.services.tasks)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import MaxValueValidator

from labeling.importers import MAX_LINE_BYTES
from labeling.models import Prompt, Task
from labeling.selectors import current_instructions
from labeling.services.tasks import VALIDATED_SETTINGS, task_settings_errors

MAX_UPLOAD_BYTES = 512 * 1024 * 1024


class TruncationTokenField(forms.CharField):
    """The truncation token, with a newline shown and typed as ``\\n`` (a text input cannot
    hold one; summarization tasks end responses at a newline). Blank: no truncation."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strip=False, required=False, max_length=16, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        return value.replace("\n", "\\n") if isinstance(value, str) else value

    def to_python(self, value: Any) -> str:
        return str(super().to_python(value)).replace("\\n", "\n")


class TaskAdminForm(forms.ModelForm):
    truncation_token = TruncationTokenField(
        help_text="A response ends after the first token ending with this text (\\n: a newline, "
        "at any token holding one), at or after the minimum position. Blank: no truncation."
    )
    instructions_text = forms.CharField(
        label="Instructions",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        help_text=(
            "What labelers read (the ? key on the labeling page). Saving a changed text "
            "creates a new version; earlier versions stay as they were."
        ),
    )

    class Meta:
        model = Task
        fields = [
            "name",
            "kind",
            "status",
            "base_model",
            "truncation_token",
            "highlight_copies",
            "selection_strategy",
            *VALIDATED_SETTINGS,
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            current = current_instructions(task_id=self.instance.pk)
            if current is not None:
                self.fields["instructions_text"].initial = current.text

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for field, message in task_settings_errors(cleaned).items():
            if field in self.fields and field not in self.errors:
                self.add_error(field, message)
        return cleaned


class ImportFileForm(forms.Form):
    file = forms.FileField(help_text="JSONL (one object per line) or CSV with a header row.")

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB."
            )
        return upload


class PromptImportForm(ImportFileForm):
    split = forms.ChoiceField(
        choices=[("", "as in the file (default train)"), *Prompt.Split.choices],
        required=False,
        help_text="Applies to rows that do not name their own split.",
    )


class ComparisonImportForm(ImportFileForm):
    file = forms.FileField(
        help_text=(
            'JSONL: {"prompt", "samples": [K texts], optional "prompt_id", '
            '"prompt_token_ids", "sample_token_ids", "gold_choice" (0-based), '
            f'"policy_version"}}. Lines up to {MAX_LINE_BYTES // 1000} kB.'
        )
    )


class GoldChoiceForm(forms.Form):
    choice = forms.IntegerField(min_value=0, required=False)
    clear = forms.BooleanField(required=False)

    def __init__(self, *args: Any, k: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["choice"].validators.append(MaxValueValidator(k - 1))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("clear") and cleaned.get("choice") is None and not self.errors:
            raise forms.ValidationError("Choose the best sample.")
        return cleaned
