"""The daily rollups: each bot's visitor activity per day (UTC), recomputed from the messages.

Guarantees:
- Idempotent. `rollup_day` computes a day from its source rows and replaces that day's rows in one
  transaction (delete, then insert), under a transaction-scoped advisory lock per day, so re-running
  a day gives the same rows, two runs of one day do not interleave, and a worker killed mid-run
  leaves each day either as it was or fully recomputed: never counted twice.
- A message belongs to the day it was created. Late and re-settled messages (a partial answer
  settled later) change their `updated`; `rollup_days_to_refresh` picks their days up again.
- Playground and evaluation turns (TEST_CHANNELS) are not visitors and are left out.

It runs for every tenant at once (one grouped query per day), a deliberate `.unscoped()` read:
the rows it writes carry their tenant explicitly. `tenant` narrows it to one tenant (backfill).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, F, FloatField, Func, Q, QuerySet, Sum
from django.db.models.aggregates import Aggregate
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from tenants.models import Tenant

from ..models import NO_ANSWER_MODEL, Conversation, DailyQuestion, DailyRollup, Message
from ..selectors import TEST_CHANNELS

# Top questions kept per bot and day; the overview sums them over its range.
QUESTIONS_PER_DAY = 50
QUESTION_MAX_CHARS = 300
# Days whose messages changed this recently are recomputed by the periodic task.
REFRESH_LOOKBACK = timedelta(minutes=30)
# Distinguishes our advisory locks from any other user of pg_advisory_xact_lock.
_LOCK_NAMESPACE = 17_0001


class Percentile(Aggregate):
    """percentile_cont(fraction) WITHIN GROUP (ORDER BY expression): NULLs are ignored."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, *, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


class _FailedAttempts(Func):
    # Failed provider attempts of a turn, from its trace's attempts list.
    template = "jsonb_array_length(jsonb_path_query_array(%(expressions)s, '$[*] ? (@.outcome == \"error\")'))"
    output_field = FloatField()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


_SPACES = re.compile(r"\s+")
_EDGE_PUNCTUATION = " ?!.,;:¿¡\"'"


def question_normalise(text: str) -> str:
    """One form for the same question asked differently: lower case, single spaces, no
    surrounding punctuation ("How do I reset my password?" == "how do i reset my password")."""
    return _SPACES.sub(" ", text.lower()).strip(_EDGE_PUNCTUATION)[:QUESTION_MAX_CHARS]


def _visitor_messages(day: date, tenant: Tenant | None) -> QuerySet[Message]:
    start, end = day_bounds(day)
    rows = Message.objects.unscoped().filter(created__gte=start, created__lt=end)
    if tenant is not None:
        rows = rows.filter(tenant_id=tenant.pk)
    return rows.exclude(conversation__channel__in=TEST_CHANNELS)


def _day_counts(day: date, tenant: Tenant | None) -> list[dict[str, Any]]:
    assistant = Q(role=Message.Role.ASSISTANT)
    unanswered = assistant & Q(model=NO_ANSWER_MODEL)
    first_token = Cast(KT("latency__first_token_ms"), FloatField())
    rows: Any = (
        _visitor_messages(day, tenant)
        .values("tenant_id", bot_id=F("conversation__bot_id"))
        .annotate(
            conversations=Count("conversation_id", distinct=True),
            messages=Count("id"),
            questions=Count("id", filter=Q(role=Message.Role.USER)),
            visitors=Count("conversation__visitor_id", distinct=True, filter=~Q(conversation__visitor_id="")),
            answered=Count("id", filter=assistant & Q(status=Message.Status.COMPLETE) & ~Q(model=NO_ANSWER_MODEL)),
            unanswered=Count("id", filter=unanswered),
            thumbs_up=Count("id", filter=Q(feedback=Message.Feedback.UP)),
            thumbs_down=Count("id", filter=Q(feedback=Message.Feedback.DOWN)),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cost=Sum("cost"),
            ttft_p50_ms=Percentile(first_token, fraction=0.5, filter=assistant),
            ttft_p95_ms=Percentile(first_token, fraction=0.95, filter=assistant),
            provider_errors=Sum(_FailedAttempts(F("trace__attempts"))),
        )
        .order_by()
    )
    return list(rows)


def _day_questions(day: date, tenant: Tenant | None) -> list[DailyQuestion]:
    """The QUESTIONS_PER_DAY most frequent questions per bot. Normalised in Python, so one rule
    (question_normalise) serves the rollup and the tests; a day's questions are a bounded read."""
    counts: dict[tuple[int, int], dict[str, list[int]]] = defaultdict(dict)
    rows = (
        _visitor_messages(day, tenant)
        .filter(role=Message.Role.USER)
        .values_list("tenant_id", "conversation__bot_id", "conversation_id", "content")
        .order_by("created", "id")
    )
    for tenant_id, bot_id, conversation_id, content in rows.iterator(chunk_size=2000):
        text = question_normalise(content or "")
        if not text:
            continue
        seen = counts[(tenant_id, bot_id)].setdefault(text, [0, conversation_id])
        seen[0] += 1
        seen[1] = conversation_id  # the latest conversation that asked it
    out: list[DailyQuestion] = []
    for (tenant_id, bot_id), questions in counts.items():
        top = sorted(questions.items(), key=lambda item: (-item[1][0], item[0]))[:QUESTIONS_PER_DAY]
        out += [
            DailyQuestion(
                tenant_id=tenant_id, bot_id=bot_id, day=day, text=text, count=n, conversation_id=conversation_id
            )
            for text, (n, conversation_id) in top
        ]
    return out


def _day_handoffs(day: date, tenant: Tenant | None) -> dict[tuple[int, int], dict[str, Any]]:
    """Visitor conversations that asked for a person that day, per (tenant, bot): how many, how many
    a person answered, and the seconds those waited for the first human reply (summed). Counted on
    the rows of bots with messages that day (a request comes with the visitor's messages). A reply
    after the day was rolled up is counted when the day is recomputed."""
    start, end = day_bounds(day)
    rows = Conversation.objects.unscoped().filter(handoff_requested__gte=start, handoff_requested__lt=end)
    if tenant is not None:
        rows = rows.filter(tenant_id=tenant.pk)
    wait = ExpressionWrapper(F("first_agent_reply") - F("handoff_requested"), output_field=DurationField())
    counted = (
        rows.exclude(channel__in=TEST_CHANNELS)
        .values("tenant_id", "bot_id")
        .annotate(
            n=Count("id"),
            answered=Count("id", filter=Q(first_agent_reply__isnull=False)),
            waited=Sum(wait, filter=Q(first_agent_reply__isnull=False)),
        )
        .order_by()
    )
    return {
        (row["tenant_id"], row["bot_id"]): {
            "handoffs": row["n"],
            "handoffs_answered": row["answered"],
            "first_human_reply_s": row["waited"].total_seconds() if row["waited"] else 0.0,
        }
        for row in counted
    }


@dataclass(frozen=True)
class RollupResult:
    day: date
    rows: int
    questions: int


def rollup_day(*, day: date, tenant: Tenant | None = None) -> RollupResult:
    """Recompute `day` (UTC) for every tenant, or for `tenant` only, and replace its rows.

    Idempotent and crash-safe (see the module docstring): the read and the replacement happen in
    one transaction under an advisory lock on the day, so concurrent runs of one day serialise.
    """
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, day.toordinal()])
        counts = _day_counts(day, tenant)
        questions = _day_questions(day, tenant)
        handoffs = _day_handoffs(day, tenant)
        rollups = [
            DailyRollup(
                tenant_id=row["tenant_id"],
                bot_id=row["bot_id"],
                day=day,
                conversations=row["conversations"],
                messages=row["messages"],
                questions=row["questions"],
                visitors=row["visitors"],
                answered=row["answered"],
                unanswered=row["unanswered"],
                thumbs_up=row["thumbs_up"],
                thumbs_down=row["thumbs_down"],
                tokens_in=row["tokens_in"] or 0,
                tokens_out=row["tokens_out"] or 0,
                cost=row["cost"] or Decimal("0"),
                ttft_p50_ms=row["ttft_p50_ms"],
                ttft_p95_ms=row["ttft_p95_ms"],
                provider_errors=int(row["provider_errors"] or 0),
                **handoffs.get((row["tenant_id"], row["bot_id"]), {}),
                computed=now,
            )
            for row in counts
        ]
        old_rollups = DailyRollup.objects.unscoped().filter(day=day)
        old_questions = DailyQuestion.objects.unscoped().filter(day=day)
        if tenant is not None:
            old_rollups = old_rollups.filter(tenant_id=tenant.pk)
            old_questions = old_questions.filter(tenant_id=tenant.pk)
        # Delete then insert: a bot with no messages left that day loses its row too.
        old_rollups.delete()
        old_questions.delete()
        DailyRollup.objects.unscoped().bulk_create(rollups, batch_size=1000)
        DailyQuestion.objects.unscoped().bulk_create(questions, batch_size=1000)
    return RollupResult(day=day, rows=len(rollups), questions=len(questions))


def rollup_days_to_refresh(*, now: datetime | None = None) -> list[date]:
    """Today and yesterday (UTC: answers settle after midnight), and the day of every visitor
    message changed in the last REFRESH_LOOKBACK (late, re-settled or newly rated), oldest first."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    days = {today, today - timedelta(days=1)}
    before_yesterday = datetime.combine(today - timedelta(days=1), time.min, tzinfo=UTC)
    changed = (
        Message.objects.unscoped()
        .filter(updated__gte=now - REFRESH_LOOKBACK, created__lt=before_yesterday)
        .exclude(conversation__channel__in=TEST_CHANNELS)
        .annotate(day=TruncDate("created", tzinfo=UTC))
        .values_list("day", flat=True)
        .order_by()
        .distinct()
    )
    days |= set(changed)
    return sorted(days)


def rollup_refresh(*, now: datetime | None = None) -> list[RollupResult]:
    """The periodic task's body: each day to refresh, each in its own transaction (a crash between
    two days leaves the finished one done and the next one as it was)."""
    return [rollup_day(day=day) for day in rollup_days_to_refresh(now=now)]
