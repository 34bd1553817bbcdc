"""The dashboard's conversation list and detail (with the per-turn trace)."""

from __future__ import annotations

from conversations.models import Message
from tests.conversations.factories import ConversationFactory, MessageFactory, TraceFactory


def test_members_see_their_conversations_with_answers_and_traces(world, django_assert_max_num_queries):
    conversation = ConversationFactory(tenant=world.tenant_a, visitor_id="visitor-dash-01")
    MessageFactory(tenant=world.tenant_a, conversation=conversation, role=Message.Role.USER, content="Where is it?")
    answer = MessageFactory(tenant=world.tenant_a, conversation=conversation, content="In Lisbon [1].", feedback="up")
    TraceFactory(
        tenant=world.tenant_a, message=answer, attempts=[{"provider": "openai", "model": "m", "outcome": "ok"}]
    )
    ConversationFactory.create_batch(3, tenant=world.tenant_a)
    bob = world.client_for(world.bob)
    with django_assert_max_num_queries(12):
        listing = bob.get("/t/acme/conversations/")
    assert listing.status_code == 200 and b"visitor-dash-01" in listing.content
    detail = bob.get(f"/t/acme/conversations/{conversation.pk}/")
    assert detail.status_code == 200
    assert b"In Lisbon [1]." in detail.content and b"openai:m ok" in detail.content


def test_it_checks_ownership(world):
    conversation = ConversationFactory(tenant=world.tenant_a)
    charlie = world.client_for(world.charlie)
    assert charlie.get(f"/t/bravo/conversations/{conversation.pk}/").status_code == 404
    assert charlie.get(f"/t/acme/conversations/{conversation.pk}/").status_code == 404
