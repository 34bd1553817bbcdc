"""Reads for the knowledge-gaps page: groups with their counts, trend and examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from .models import GapGroup, GapItem

EXAMPLES_PER_GROUP = 3
TREND_DAYS = 7


@dataclass
class GapRow:
    group: GapGroup
    recent: int  # items in the last TREND_DAYS days
    before: int  # items in the TREND_DAYS days before those
    examples: list[GapItem] = field(default_factory=list)

    @property
    def trend(self) -> str:
        """The trend in words, for the table (and for screen readers next to the little chart)."""
        if self.recent == self.before:
            return "steady" if self.recent else "quiet"
        if self.before == 0:
            return "new"
        change = round((self.recent - self.before) * 100 / self.before)
        return f"up {change}%" if change > 0 else f"down {-change}%"

    @property
    def bars(self) -> tuple[int, int]:
        """The two bars' heights (0-20) of the trend chart: the previous week, then this one."""
        top = max(self.recent, self.before, 1)
        return round(20 * self.before / top), round(20 * self.recent / top)

    @property
    def chart(self) -> list[dict[str, int | str]]:
        """The trend chart's bars as SVG rectangles on a 26x22 canvas, baseline at y=21."""
        before, recent = self.bars
        return [
            {"x": 2, "y": 21 - before, "height": before, "name": "before"},
            {"x": 14, "y": 21 - recent, "height": recent, "name": "recent"},
        ]


def gap_list(*, bot_id: int | None = None, dismissed: bool = False, now: datetime | None = None) -> list[GapRow]:
    """The tenant's gap groups, most recently seen first, each with its representative question,
    its trend over two weeks and a few examples: two queries, whatever the number of groups.
    Tenant scope required."""
    now = now or timezone.now()
    week = now - timedelta(days=TREND_DAYS)
    fortnight = now - timedelta(days=2 * TREND_DAYS)
    groups = GapGroup.objects.filter(dismissed=dismissed)
    if bot_id is not None:
        groups = groups.filter(bot_id=bot_id)
    groups = (
        groups.select_related("bot", "representative", "correction")
        .defer("centroid", "representative__embedding", "correction__embedding")
        .annotate(
            recent=Count("items", filter=Q(items__created__gt=week)),
            before=Count("items", filter=Q(items__created__gt=fortnight, items__created__lte=week)),
        )
        .order_by("-last_seen", "-id")[:200]
    )
    rows = [GapRow(group=g, recent=g.recent, before=g.before) for g in groups]
    if not rows:
        return rows
    examples: dict[int, list[GapItem]] = {}
    latest = (
        GapItem.objects.filter(group_id__in=[r.group.pk for r in rows])
        .defer("embedding")
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("group_id")], order_by=[F("created").desc(), F("id").desc()])
        )
        .filter(rank__lte=EXAMPLES_PER_GROUP)
        .order_by("group_id", "rank")
    )
    for item in latest:
        examples.setdefault(item.group_id, []).append(item)
    for row in rows:
        row.examples = examples.get(row.group.pk, [])
    return rows


def gap_group_get(*, group_id: int) -> GapGroup | None:
    """One gap group of the tenant in context with its bot and representative, or None."""
    return GapGroup.objects.select_related("bot", "representative").filter(pk=group_id).first()
