"""The knowledge-gaps page: groups with their question, count, trend and examples; admins write the
answer or dismiss; members read; another tenant's group is a 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from bots.models import Correction
from conversations.gaps import gaps_scan
from conversations.models import Conversation, GapGroup
from tenants.context import tenant_context
from tests.conversations.factories import ConversationFactory
from tests.conversations.test_knowledge_gaps import failed


def url(name: str, *args: object) -> str:
    return reverse(name, args=args)


@pytest.fixture
def gap(world):
    conversation = ConversationFactory(tenant=world.tenant_a, channel=Conversation.Channel.WIDGET)
    failed(conversation, "Do you deliver on weekends?")
    failed(conversation, "Can you deliver on a Saturday?")
    gaps_scan()
    with tenant_context(world.tenant_a):
        return GapGroup.objects.select_related("representative").get()


def test_the_page_lists_a_group_with_its_question_count_trend_and_examples(world, gap):
    body = world.client_for(world.alice).get(url("knowledge_gaps", "acme")).content.decode()
    assert gap.representative.question in body
    assert "2 times" in body and "new" in body and "2 in the last 7 days" in body
    assert url("conversation_detail", "acme", gap.representative.conversation_id) in body
    assert url("gap_correct", "acme", gap.pk) in body


def test_writing_the_answer_from_a_group_saves_a_correction_and_marks_the_group(world, gap):
    client = world.client_for(world.alice)
    form = client.get(url("gap_correct", "acme", gap.pk)).content.decode()
    assert f"{gap.representative.question}</textarea>" in form
    response = client.post(url("gap_correct", "acme", gap.pk), {"question": "Weekend delivery?", "answer": "Sat."})
    assert response.status_code == 302
    with tenant_context(world.tenant_a):
        correction = Correction.objects.get()
        gap.refresh_from_db()
    assert gap.correction_id == correction.pk and correction.bot_id == gap.bot_id
    assert "Answered by a correction" in client.get(url("knowledge_gaps", "acme")).content.decode()


def test_a_dismissed_group_leaves_the_list_and_can_be_shown_again(world, gap):
    client = world.client_for(world.alice)
    client.post(url("gap_dismiss", "acme", gap.pk))
    assert gap.representative.question not in client.get(url("knowledge_gaps", "acme")).content.decode()
    dismissed = client.get(url("knowledge_gaps", "acme") + "?show=dismissed").content.decode()
    assert gap.representative.question in dismissed
    client.post(url("gap_dismiss", "acme", gap.pk))
    assert gap.representative.question in client.get(url("knowledge_gaps", "acme")).content.decode()


def test_a_member_reads_the_gaps_but_cannot_dismiss_or_answer_them(world, gap):
    client = world.client_for(world.bob)
    body = client.get(url("knowledge_gaps", "acme")).content.decode()
    assert gap.representative.question in body and "Write the answer</a>" not in body and "Dismiss</button>" not in body
    refused = [client.post(url("gap_dismiss", "acme", gap.pk)), client.get(url("gap_correct", "acme", gap.pk))]
    assert [r.status_code for r in refused] == [403, 403]


def test_another_tenants_group_is_a_404(world, gap):
    client = world.client_for(world.charlie)
    assert client.post(url("gap_dismiss", "bravo", gap.pk)).status_code == 404
    assert client.post(url("gap_correct", "bravo", gap.pk), {"question": "Q?", "answer": "A."}).status_code == 404
    assert gap.representative.question not in client.get(url("knowledge_gaps", "bravo")).content.decode()


def test_the_page_reads_in_a_fixed_number_of_queries(world, django_assert_max_num_queries):
    conversation = ConversationFactory(tenant=world.tenant_a)
    for question in ("Do you deliver on weekends?", "Which payment methods do you accept?", "Is there a mobile app?"):
        failed(conversation, question)
    gaps_scan()
    client = world.client_for(world.alice)
    with django_assert_max_num_queries(12):
        response = client.get(url("knowledge_gaps", "acme"))
    assert response.content.decode().count("Write the answer</a>") == 3
