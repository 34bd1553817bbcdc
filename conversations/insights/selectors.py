"""Reads for the overview page. Everything comes from the rollups (DailyRollup, DailyQuestion),
the billing quota interface and one bounded, indexed read of the latest "I don't know" answers: the
message table is never scanned. Tenant scope required (the scoped managers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db.models import Max, OuterRef, Subquery, Sum
from django.utils import timezone

from billing.quotas import LIMIT_FIELDS, countable_kinds, current_usage, effective_plan
from bots.models import Bot
from tenants.models import Tenant

from ..inbox_selectors import duration_words
from ..models import NO_ANSWER_MODEL, DailyQuestion, DailyRollup, Message
from ..selectors import TEST_CHANNELS

RANGES = (7, 30, 90)
TOP_QUESTIONS = 10
LATEST_UNANSWERED = 10


@dataclass
class DayPoint:
    day: date
    messages: int = 0
    questions: int = 0
    conversations: int = 0
    visitors: int = 0
    answered: int = 0
    unanswered: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal("0")
    provider_errors: int = 0
    handoffs: int = 0
    handoffs_answered: int = 0
    first_human_reply_s: float = 0.0
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    _p50_weighted: float = 0.0
    _p50_weight: int = 0

    @property
    def answer_rate(self) -> float | None:
        """Answered out of answered + "I don't know", in percent (None without either)."""
        settled = self.answered + self.unanswered
        return round(self.answered * 100 / settled, 1) if settled else None

    @property
    def first_human_reply_words(self) -> str:
        """The average wait for the first human reply of the handoffs a person answered ("" if none)."""
        if not self.handoffs_answered:
            return ""
        return duration_words(self.first_human_reply_s / self.handoffs_answered)

    @property
    def satisfaction(self) -> float | None:
        """Thumbs up out of all thumbs, in percent (None without any)."""
        rated = self.thumbs_up + self.thumbs_down
        return round(self.thumbs_up * 100 / rated, 1) if rated else None


@dataclass(frozen=True)
class UsageBar:
    label: str
    used: int
    limit: int | None
    in_bytes: bool = False

    @property
    def percent(self) -> int:
        if not self.limit:
            return 0 if self.limit is None else 100
        return min(100, round(self.used * 100 / self.limit))


@dataclass(frozen=True)
class TopQuestion:
    text: str
    count: int
    conversation_id: int | None


@dataclass(frozen=True)
class Unanswered:
    question: str
    conversation_id: int
    created: datetime


@dataclass
class Overview:
    days: int
    bot: Bot | None
    points: list[DayPoint]
    totals: DayPoint
    top_questions: list[TopQuestion] = field(default_factory=list)
    unanswered: list[Unanswered] = field(default_factory=list)
    usage: list[UsageBar] = field(default_factory=list)


_SUMMED = (
    "messages",
    "questions",
    "conversations",
    "visitors",
    "answered",
    "unanswered",
    "thumbs_up",
    "thumbs_down",
    "tokens_in",
    "tokens_out",
    "cost",
    "provider_errors",
    "handoffs",
    "handoffs_answered",
    "first_human_reply_s",
)


def _add(point: DayPoint, row: DailyRollup) -> None:
    for name in _SUMMED:
        setattr(point, name, getattr(point, name) + getattr(row, name))
    # Percentiles of several bots do not add up: the day's p50 is the bots' p50 weighted by their
    # answers, and its p95 the worst bot's (an upper bound). With a bot filter both are exact.
    if row.ttft_p50_ms is not None:
        weight = max(row.answered, 1)
        point._p50_weighted += row.ttft_p50_ms * weight
        point._p50_weight += weight
        point.ttft_p50_ms = round(point._p50_weighted / point._p50_weight, 1)
    if row.ttft_p95_ms is not None:
        point.ttft_p95_ms = max(point.ttft_p95_ms or 0.0, round(row.ttft_p95_ms, 1))


def range_start(*, days: int, today: date | None = None) -> date:
    today = today or timezone.now().astimezone(UTC).date()
    return today - timedelta(days=days - 1)


def overview_series(*, days: int, bot: Bot | None, today: date | None = None) -> tuple[list[DayPoint], DayPoint]:
    """One point per day of the range (zeros for a quiet day) and the range's totals: one query."""
    start = range_start(days=days, today=today)
    rows = DailyRollup.objects.filter(day__gte=start)
    if bot is not None:
        rows = rows.filter(bot=bot)
    by_day: dict[date, DayPoint] = {}
    totals = DayPoint(day=start)
    for row in rows.order_by("day", "bot_id"):
        _add(by_day.setdefault(row.day, DayPoint(day=row.day)), row)
        _add(totals, row)
    points = [by_day.get(start + timedelta(days=n)) or DayPoint(day=start + timedelta(days=n)) for n in range(days)]
    return points, totals


def top_questions(*, days: int, bot: Bot | None, limit: int = TOP_QUESTIONS) -> list[TopQuestion]:
    """The most frequent visitor questions of the range, from the daily top lists (one query)."""
    rows = DailyQuestion.objects.filter(day__gte=range_start(days=days))
    if bot is not None:
        rows = rows.filter(bot=bot)
    grouped = (
        rows.values("text")
        .annotate(total=Sum("count"), conversation=Max("conversation_id"))
        .order_by("-total", "text")[:limit]
    )
    return [TopQuestion(r["text"], r["total"], r["conversation"]) for r in grouped]


def latest_unanswered(*, days: int, bot: Bot | None, limit: int = LATEST_UNANSWERED) -> list[Unanswered]:
    """The latest "I don't know" answers of the range with the question before each: one query on
    the partial index of such answers (conversations_msg_unanswered)."""
    start = datetime.combine(range_start(days=days), datetime.min.time(), tzinfo=UTC)
    question = Message.objects.filter(
        conversation_id=OuterRef("conversation_id"), role=Message.Role.USER, created__lte=OuterRef("created")
    ).order_by("-created", "-id")
    answers = Message.objects.filter(model=NO_ANSWER_MODEL, created__gte=start)
    if bot is not None:
        answers = answers.filter(conversation__bot=bot)
    rows = (
        answers.exclude(conversation__channel__in=TEST_CHANNELS)
        .annotate(question=Subquery(question.values("content")[:1]))
        .values("question", "conversation_id", "created")
        .order_by("-created")[:limit]
    )
    return [Unanswered(r["question"] or "", r["conversation_id"], r["created"]) for r in rows]


def usage_bars(*, tenant: Tenant) -> list[UsageBar]:
    """Usage against the plan's limits, through billing's quota interface (as the billing page)."""
    plan = effective_plan(tenant=tenant)
    return [
        UsageBar(label, current_usage(tenant=tenant, kind=kind), getattr(plan, limit_field), kind == "storage_bytes")
        for kind, (limit_field, label) in LIMIT_FIELDS.items()
        if kind in countable_kinds()
    ]


def overview_for(*, tenant: Tenant, days: int, bot: Bot | None) -> Overview:
    points, totals = overview_series(days=days, bot=bot)
    return Overview(
        days=days,
        bot=bot,
        points=points,
        totals=totals,
        top_questions=top_questions(days=days, bot=bot),
        unanswered=latest_unanswered(days=days, bot=bot),
        usage=usage_bars(tenant=tenant),
    )
