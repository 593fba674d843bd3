from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def create_cache_tables(sender: Any, *, using: str = "default", **kwargs: Any) -> None:
    """``migrate`` also makes the database cache's table (throttles and login limits live
    there when there is no Redis); ``createcachetable`` skips tables that exist."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)


class LabelingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "labeling"
    verbose_name = "Labeling"

    def ready(self) -> None:
        from labeling import checks  # noqa: F401  (registers the system checks)

        post_migrate.connect(create_cache_tables, sender=self, dispatch_uid="labeling.cache")
