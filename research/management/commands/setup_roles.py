"""manage.py setup_roles: create or update the Researchers group and its permissions."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from research.services import setup_researcher_group


class Command(BaseCommand):
    help = "Create the Researchers group (staff researchers who are not superusers)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--add",
            nargs="*",
            default=[],
            metavar="USERNAME",
            help="also make these users staff members of the group",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from django.contrib.auth import get_user_model

        group = setup_researcher_group()
        for username in options["add"]:
            user: Any = get_user_model().objects.filter(username=username).first()
            if user is None:
                self.stderr.write(f"No user {username!r}; skipped.")
                continue
            user.is_staff = True
            user.save(update_fields=["is_staff"])
            user.groups.add(group)
        count = group.permissions.count()
        self.stdout.write(self.style.SUCCESS(f"Group {group.name!r} has {count} permissions."))
