"""`manage.py insights_rollup --day YYYY-MM-DD [--days N] [--tenant SLUG]`: recompute daily rollups.

For backfills and repairs: each day is recomputed from its messages and replaces its rows
(idempotent, see conversations/insights/rollups.py). `--days N` recomputes N days ending with --day.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from conversations.insights.rollups import rollup_day
from tenants.selectors import tenant_by_slug


class Command(BaseCommand):
    help = "Recompute the insights rollups of one day (or --days N ending with it), for every tenant or one."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--day", required=True, help="the (last) day to recompute, YYYY-MM-DD, in UTC")
        parser.add_argument("--days", type=int, default=1, help="how many days ending with --day (default 1)")
        parser.add_argument("--tenant", help="workspace slug (default: every workspace)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            last = date.fromisoformat(opts["day"])
        except ValueError:
            raise CommandError(f"--day must be a date like 2026-01-31, not {opts['day']!r}.") from None
        if not 1 <= opts["days"] <= 3660:
            raise CommandError("--days must be between 1 and 3660.")
        tenant = None
        if opts["tenant"]:
            tenant = tenant_by_slug(slug=opts["tenant"])
            if tenant is None:
                raise CommandError(f"No workspace with slug {opts['tenant']!r}.")
        for offset in range(opts["days"] - 1, -1, -1):
            result = rollup_day(day=last - timedelta(days=offset), tenant=tenant)
            self.stdout.write(f"{result.day}: {result.rows} bot-day rows, {result.questions} top questions")
