"""Knowledge gaps: failed visitor questions grouped into topics incrementally, by embedding
similarity (the real local model, real Postgres and pgvector)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from conversations.gap_selectors import gap_list
from conversations.gaps import NO_ANSWER_MODEL, gaps_scan
from conversations.models import Conversation, GapGroup, GapItem, Message
from tenants.context import tenant_context
from tests.conversations.factories import ConversationFactory, MessageFactory, conversation_with_document
from tests.fakes.fixtures import ask


def failed(conversation: Conversation, question: str, *, feedback: str = "", model: str = NO_ANSWER_MODEL, **extra):
    """A visitor question and the bot's failed answer to it (unanswered, or thumbed down)."""
    tenant = conversation.tenant
    MessageFactory(tenant=tenant, conversation=conversation, role=Message.Role.USER, content=question, **extra)
    return MessageFactory(
        tenant=tenant,
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Sorry, I don't know.",
        model=model,
        feedback=feedback,
        **extra,
    )


@pytest.fixture
def widget_conversation(world):
    return ConversationFactory(tenant=world.tenant_a, channel=Conversation.Channel.WIDGET)


def _groups(tenant) -> list[list[str]]:
    with tenant_context(tenant):
        return [
            sorted(GapItem.objects.filter(group=group).values_list("question", flat=True))
            for group in GapGroup.objects.order_by("id")
        ]


def test_similar_questions_join_one_group_and_unrelated_ones_start_their_own(world, widget_conversation):
    failed(widget_conversation, "Do you deliver on weekends?")
    failed(widget_conversation, "Can you deliver on a Saturday?")
    failed(widget_conversation, "Is there weekend delivery?")
    failed(widget_conversation, "Which payment methods do you accept?")
    result = gaps_scan()
    assert result.filed == 4
    groups = _groups(world.tenant_a)
    assert sorted(map(len, groups)) == [1, 3]
    assert ["Which payment methods do you accept?"] in groups


def test_grouping_is_incremental_and_a_scan_never_files_an_answer_twice(world, widget_conversation):
    failed(widget_conversation, "Do you deliver on weekends?")
    assert gaps_scan().filed == 1
    assert gaps_scan().filed == 0, "nothing new since the last scan"
    with tenant_context(world.tenant_a):
        group = GapGroup.objects.get()
        before = list(group.centroid)
    failed(widget_conversation, "Can you deliver on a Sunday?")
    assert gaps_scan().filed == 1
    with tenant_context(world.tenant_a):
        group.refresh_from_db()
        items = list(GapItem.objects.filter(group=group))
        assert group.size == 2 and len(items) == 2
        # The centroid is the running mean of the two questions' vectors.
        mean = [(a + b) / 2 for a, b in zip(items[0].embedding, items[1].embedding, strict=True)]
        assert list(group.centroid) != before
        assert max(abs(c - m) for c, m in zip(group.centroid, mean, strict=True)) < 1e-5
        assert group.representative_id in {i.pk for i in items}


def test_thumbed_down_answers_count_and_the_tenants_own_tests_do_not(world, widget_conversation):
    failed(widget_conversation, "How do I export my invoices?", model="offline:extractive", feedback="down")
    failed(widget_conversation, "How do I export my invoices as PDF?", model="offline:extractive", feedback="up")
    playground = ConversationFactory(
        tenant=world.tenant_a, bot=widget_conversation.bot, channel=Conversation.Channel.PLAYGROUND
    )
    failed(playground, "Do you deliver on weekends?")
    gaps_scan()
    with tenant_context(world.tenant_a):
        assert list(GapItem.objects.values_list("question", "kind")) == [
            ("How do I export my invoices?", GapItem.Kind.THUMBS_DOWN)
        ]


def test_groups_never_mix_tenants_and_each_tenant_lists_only_its_own(world, widget_conversation):
    failed(widget_conversation, "Do you deliver on weekends?")
    other = ConversationFactory(tenant=world.tenant_b)
    failed(other, "Do you deliver on weekends?")
    gaps_scan()
    with tenant_context(world.tenant_a):
        rows = gap_list()
        assert [r.group.representative.question for r in rows] == ["Do you deliver on weekends?"]
        assert rows[0].group.size == 1
    with tenant_context(world.tenant_b):
        assert [r.group.bot_id for r in gap_list()] == [other.bot_id]


def test_the_trend_compares_the_last_seven_days_with_the_seven_before(world, widget_conversation):
    now = timezone.now()
    for days in (1, 2, 3, 9):
        failed(widget_conversation, "Do you deliver on weekends?", created=now - timedelta(days=days))
    gaps_scan()
    with tenant_context(world.tenant_a):
        (row,) = gap_list()
    assert (row.recent, row.before, row.trend) == (3, 1, "up 200%")
    assert row.bars == (7, 20)
    assert len(row.examples) == 3


def test_the_gap_list_reads_in_two_queries_whatever_the_number_of_groups(
    world, widget_conversation, django_assert_num_queries
):
    for question in ("Do you deliver on weekends?", "Which payment methods do you accept?", "Is there a mobile app?"):
        failed(widget_conversation, question)
        failed(widget_conversation, question)
    gaps_scan()
    with tenant_context(world.tenant_a), django_assert_num_queries(2):
        rows = gap_list()
        assert len(rows) == 3 and all(len(r.examples) == 2 for r in rows)


def test_a_question_the_knowledge_cannot_answer_becomes_a_gap(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    conversation, _kb = conversation_with_document(
        world.tenant_a, text="# Office\nOur office is in Lisbon, on the third floor.\n", name="Support"
    )
    ask(conversation.bot, conversation, "What is the warranty period of the blender?")
    gaps_scan()
    with tenant_context(world.tenant_a):
        item = GapItem.objects.get()
    assert (item.question, item.kind, item.conversation_id) == (
        "What is the warranty period of the blender?",
        GapItem.Kind.UNANSWERED,
        conversation.pk,
    )
