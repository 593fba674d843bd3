"""The Researchers role: staff users who configure tasks, label gold and manage model versions
in the admin, across the labeling and training apps (this app is the one that knows both)."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction

RESEARCHERS_GROUP = "Researchers"

# app_label -> model -> actions. Researchers configure and label gold; they never edit labels.
RESEARCHER_PERMISSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "labeling": {
        "task": ("add", "change", "view"),
        "tasklabeler": ("add", "change", "delete", "view"),
        "instructionsversion": ("add", "view"),
        "prompt": ("add", "change", "delete", "view"),
        "comparison": ("add", "change", "view"),
        "assignment": ("view",),
        "label": ("view",),
    },
    "training": {
        "policyversion": ("change", "view"),
        "rewardmodelversion": ("view",),
        "trainingrun": ("view",),
    },
    "auth": {"user": ("view",)},
}


@transaction.atomic
def setup_researcher_group() -> Group:
    """Create or update the Researchers group with exactly its model permissions."""
    group, _ = Group.objects.get_or_create(name=RESEARCHERS_GROUP)
    wanted = []
    for app_label, models in RESEARCHER_PERMISSIONS.items():
        for model, actions in models.items():
            for action in actions:
                wanted.append(
                    Permission.objects.get(
                        content_type__app_label=app_label, codename=f"{action}_{model}"
                    )
                )
    group.permissions.set(wanted)
    return group
