"""The daily rollups: hand-counted days, late and re-settled messages, idempotence, a crash
between two days, and tenant isolation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction

from conversations.insights import rollups
from conversations.insights.rollups import question_normalise, rollup_day, rollup_days_to_refresh, rollup_refresh
from conversations.models import NO_ANSWER_MODEL, Conversation, DailyQuestion, DailyRollup, Message
from tests.bots.factories import BotFactory
from tests.conversations.factories import ConversationFactory, MessageFactory, TraceFactory

DAY = date(2026, 11, 20)


def at(hour: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def turn(conversation, question, *, hour, answer="An answer.", model="openai:gpt-4o-mini", **fields):
    """A visitor's question and the bot's answer, both created at `hour` on DAY (unless `day`)."""
    day = fields.pop("day", DAY)
    tenant = conversation.tenant
    MessageFactory(tenant=tenant, conversation=conversation, role="user", content=question, created=at(hour, day))
    return MessageFactory(
        tenant=tenant, conversation=conversation, content=answer, model=model, created=at(hour, day), **fields
    )


@pytest.fixture
def day_of_acme(world):
    """On DAY, bot "Support" of acme: 2 visitors in 3 conversations, 4 turns, plus a playground turn."""
    tenant = world.tenant_a
    bot = BotFactory(tenant=tenant, name="Support")
    one = ConversationFactory(tenant=tenant, bot=bot, visitor_id="v1")
    two = ConversationFactory(tenant=tenant, bot=bot, visitor_id="v1")
    three = ConversationFactory(tenant=tenant, bot=bot, visitor_id="v2", channel=Conversation.Channel.API)
    first = turn(
        one,
        "How do I reset my password?",
        hour=9,
        tokens_in=100,
        tokens_out=20,
        cost=Decimal("0.001"),
        feedback="up",
        latency={"first_token_ms": 100},
    )
    TraceFactory(tenant=tenant, message=first, attempts=[{"outcome": "error"}, {"outcome": "ok"}])
    turn(
        one,
        "how do I reset my password",
        hour=10,
        tokens_in=50,
        tokens_out=10,
        cost=Decimal("0.002"),
        latency={"first_token_ms": 300},
    )
    turn(two, "Where is the office?", hour=11, answer="I don't know.", model=NO_ANSWER_MODEL, feedback="down")
    turn(three, "Pricing?", hour=12, status=Message.Status.PARTIAL, latency={"first_token_ms": 500})
    playground = ConversationFactory(tenant=tenant, bot=bot, channel=Conversation.Channel.PLAYGROUND)
    turn(playground, "A test of mine", hour=13, tokens_in=999)
    # The day after, not counted in DAY.
    turn(one, "Tomorrow's question", hour=1, day=DAY + timedelta(days=1))
    return bot


def test_a_day_is_counted_as_by_hand(day_of_acme, world):
    result = rollup_day(day=DAY)

    assert result.rows == 1
    row = DailyRollup.objects.unscoped().get(tenant=world.tenant_a, day=DAY)
    assert row.bot_id == day_of_acme.pk
    assert (row.conversations, row.messages, row.questions, row.visitors) == (3, 8, 4, 2)
    # The partial answer is neither answered nor "I don't know".
    assert (row.answered, row.unanswered) == (2, 1)
    assert (row.thumbs_up, row.thumbs_down, row.handoffs) == (1, 1, 0)
    assert (row.tokens_in, row.tokens_out, row.cost) == (150, 30, Decimal("0.003"))
    assert row.ttft_p50_ms == pytest.approx(300)
    assert row.ttft_p95_ms == pytest.approx(480)
    assert row.provider_errors == 1
    top = list(DailyQuestion.objects.unscoped().filter(day=DAY).order_by("-count", "text"))
    assert [(q.text, q.count) for q in top] == [
        ("how do i reset my password", 2),
        ("pricing", 1),
        ("where is the office", 1),
    ]


def test_questions_asked_differently_are_one_question():
    assert question_normalise("  How do I   reset my password?? ") == question_normalise("how do i reset my password")


def test_running_a_day_twice_gives_the_same_rows(day_of_acme, world):
    rollup_day(day=DAY)
    first = list(DailyRollup.objects.unscoped().filter(day=DAY).values())
    rollup_day(day=DAY)
    second = list(DailyRollup.objects.unscoped().filter(day=DAY).values())

    assert len(second) == 1
    for row in (*first, *second):
        del row["id"], row["computed"]
    assert first == second
    assert DailyQuestion.objects.unscoped().filter(day=DAY).count() == 3


def test_a_late_message_and_a_resettled_partial_update_their_day(day_of_acme, world):
    rollup_day(day=DAY)
    now = at(12, DAY + timedelta(days=5))
    conversation = Conversation.objects.unscoped().get(visitor_id="v2")
    partial = Message.objects.unscoped().get(conversation=conversation, role="assistant")
    # The partial answer settles days later; a late message lands on DAY as well.
    Message.objects.unscoped().filter(pk=partial.pk).update(status=Message.Status.COMPLETE, updated=now)
    MessageFactory(
        tenant=world.tenant_a, conversation=conversation, role="user", content="Late", created=at(23), updated=now
    )

    assert DAY in rollup_days_to_refresh(now=now)
    rollup_refresh(now=now)

    row = DailyRollup.objects.unscoped().get(tenant=world.tenant_a, day=DAY)
    assert (row.answered, row.questions, row.messages) == (3, 5, 9)


def test_a_worker_killed_between_two_days_counts_nothing_twice(day_of_acme, world, monkeypatch):
    later = DAY + timedelta(days=1)
    real = rollups._day_questions

    def crash_on_the_second_day(day, tenant):
        if day == later:
            raise SystemExit("worker killed")
        return real(day, tenant)

    monkeypatch.setattr(rollups, "_day_questions", crash_on_the_second_day)
    with pytest.raises(SystemExit):
        for day in (DAY, later):
            rollup_day(day=day)
    monkeypatch.undo()

    # The first day finished; the second left nothing behind. Running both again fixes it.
    assert DailyRollup.objects.unscoped().filter(day=DAY).count() == 1
    assert not DailyRollup.objects.unscoped().filter(day=later).exists()
    for day in (DAY, later):
        rollup_day(day=day)
    assert DailyRollup.objects.unscoped().get(day=DAY).questions == 4
    assert DailyRollup.objects.unscoped().get(day=later).questions == 1


def test_a_crash_inside_a_day_keeps_the_previous_rows(day_of_acme, world, monkeypatch):
    rollup_day(day=DAY)
    MessageFactory(
        tenant=world.tenant_a,
        conversation=Conversation.objects.unscoped().get(visitor_id="v2"),
        role="user",
        content="More",
        created=at(20),
    )

    def crash(day, tenant):
        raise SystemExit("worker killed")

    monkeypatch.setattr(rollups, "_day_questions", crash)
    with pytest.raises(SystemExit):
        rollup_day(day=DAY)

    assert DailyRollup.objects.unscoped().get(day=DAY).questions == 4


def test_one_tenants_backfill_leaves_other_tenants_rows_alone(day_of_acme, world):
    bravo_bot = BotFactory(tenant=world.tenant_b)
    turn(ConversationFactory(tenant=world.tenant_b, bot=bravo_bot), "Bravo's question", hour=9)
    rollup_day(day=DAY)
    DailyRollup.objects.unscoped().filter(tenant=world.tenant_b).update(questions=42)

    call_command("insights_rollup", "--day", DAY.isoformat(), "--tenant", "acme")

    assert DailyRollup.objects.unscoped().get(tenant=world.tenant_b).questions == 42
    assert DailyRollup.objects.unscoped().get(tenant=world.tenant_a).questions == 4
    assert set(DailyQuestion.objects.unscoped().filter(tenant=world.tenant_b).values_list("text", flat=True)) == {
        "bravo's question"
    }


def test_the_command_backfills_several_days(day_of_acme, world, capsys):
    call_command("insights_rollup", "--day", (DAY + timedelta(days=1)).isoformat(), "--days", "3")

    days = set(DailyRollup.objects.unscoped().values_list("day", flat=True))
    assert days == {DAY, DAY + timedelta(days=1)}
    assert "3 top questions" in capsys.readouterr().out


def test_the_command_refuses_a_bad_day(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--day must be a date"):
        call_command("insights_rollup", "--day", "yesterday")


def test_a_day_can_be_recomputed_inside_a_callers_transaction(day_of_acme):
    # rollup_day opens its own transaction; called inside another one it must still work.
    with transaction.atomic():
        assert rollup_day(day=DAY).rows == 1


def test_celery_beat_runs_the_refresh_of_today_and_yesterday(world, settings):
    from django.utils import timezone

    from conversations.tasks import insights_rollup_refresh_task

    assert settings.CELERY_BEAT_SCHEDULE["insights-rollup-refresh"]["task"] == insights_rollup_refresh_task.name
    bot = BotFactory(tenant=world.tenant_a)
    now = timezone.now()
    conversation = ConversationFactory(tenant=world.tenant_a, bot=bot)
    MessageFactory(tenant=world.tenant_a, conversation=conversation, role="user", content="Hello?", created=now)

    insights_rollup_refresh_task.apply().get()

    row = DailyRollup.objects.unscoped().get(tenant=world.tenant_a, day=now.astimezone(UTC).date())
    assert (row.bot_id, row.questions) == (bot.pk, 1)
