"""`manage.py retention_enforce [--dry-run]`: delete conversations past each workspace's retention.

The same work as the nightly beat task (conversations.tasks.retention_enforce_task); --dry-run
only counts what would go.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from conversations.privacy_services import retention_enforce


class Command(BaseCommand):
    help = "Delete conversations last active before each workspace's retention period (or count them)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count, do not delete")

    def handle(self, *args: Any, **opts: Any) -> None:
        done = retention_enforce(dry_run=opts["dry_run"])
        verb = "would delete" if opts["dry_run"] else "deleted"
        if not done:
            self.stdout.write("No workspace has a retention period.")
        for slug, count in done.items():
            self.stdout.write(f"{slug}: {verb} {count} conversations")
