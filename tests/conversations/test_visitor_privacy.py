"""One visitor's export and erasure: everything about them comes out as JSON, and erasing them
leaves no row, vector or Redis key behind, while other visitors keep theirs."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from conversations.models import GapGroup, Message
from conversations.privacy_selectors import visitor_export
from conversations.privacy_services import visitor_erase
from conversations.streams import stream_key
from tenants.context import tenant_context
from tests.conversations.factories import ConversationFactory, LeadFactory, unit_vector, visitor_footprint
from tests.support.residue import redis_keys, rows_mentioning

VISITOR = "visitor-zq7x"
CANARY = "Quokkaberry"  # appears only in this visitor's messages, memory, feedback and lead


@pytest.fixture
def memory_settings(settings):
    settings.BOT_MEMORY_WINDOW_MESSAGES = 2  # so the first turns fold into the summary


def test_an_export_holds_conversations_messages_traces_memory_feedback_and_leads(world, memory_settings):
    conversation = visitor_footprint(ConversationFactory(tenant=world.tenant_a).bot, visitor=VISITOR, canary=CANARY)
    with tenant_context(world.tenant_a):
        data = visitor_export(visitor=VISITOR)
        by_identity = visitor_export(visitor=f"u-{VISITOR}")
    assert [c["id"] for c in data["conversations"]] == [conversation.pk]
    exported = data["conversations"][0]
    assert len(exported["messages"]) == 6
    assert exported["messages"][0]["content"].startswith(f"My name is {CANARY}")
    assert all(m["trace"] is not None for m in exported["messages"] if m["role"] == "assistant")
    assert exported["memory"]["facts"].get("name") == CANARY
    assert data["feedback"][0]["comment"] == f"{CANARY} was wrong"
    assert data["leads"][0]["question"] == f"Call {CANARY}"
    assert by_identity["conversations"] == data["conversations"]
    json.dumps(data)  # JSON-ready as it is


def test_erasing_a_visitor_leaves_no_row_vector_or_redis_key(world, memory_settings):
    bot = ConversationFactory(tenant=world.tenant_a).bot
    conversation = visitor_footprint(bot, visitor=VISITOR, canary=CANARY)
    other = visitor_footprint(bot, visitor="visitor-other", canary="Wombatfig")
    message_ids = list(Message.objects.unscoped().filter(conversation=conversation).values_list("pk", flat=True))
    before = redis_keys()
    assert any(VISITOR in k for k in before) and any(f"handoff-conv-{conversation.pk}" in k for k in before)
    assert rows_mentioning(CANARY) and rows_mentioning(VISITOR)

    with tenant_context(world.tenant_a):
        result = visitor_erase(visitor=VISITOR)

    assert (result.conversations, result.messages, result.leads) == (1, 6, 1)
    assert rows_mentioning(CANARY) == []
    assert rows_mentioning(VISITOR) == []
    after = redis_keys()
    assert [k for k in after if VISITOR in k] == []
    assert [k for k in after if k.endswith(f"handoff-conv-{conversation.pk}")] == []
    assert not {stream_key(pk) for pk in message_ids} & set(after)
    # The other visitor keeps everything, and the shared gap group now holds only their question.
    assert rows_mentioning("Wombatfig") and any("visitor-other" in k for k in after)
    assert Message.objects.unscoped().filter(conversation=other).count() == 6
    group = GapGroup.objects.unscoped().get(bot=bot)
    assert group.size == 1 and list(group.centroid) == unit_vector(0)


def test_an_unknown_visitor_or_another_workspaces_visitor_is_nothing_found(world):
    visitor_footprint(ConversationFactory(tenant=world.tenant_b).bot, visitor=VISITOR, canary=CANARY)
    with tenant_context(world.tenant_a):
        assert visitor_export(visitor=VISITOR) is None
        assert visitor_erase(visitor=VISITOR).empty
    assert rows_mentioning(CANARY)  # tenant B's visitor is untouched


def test_the_privacy_page_finds_exports_and_erases_a_visitor(world):
    visitor_footprint(ConversationFactory(tenant=world.tenant_a).bot, visitor=VISITOR, canary=CANARY)
    client = world.client_for(world.alice)
    page = client.get(reverse("privacy", args=["acme"]), {"visitor": VISITOR})
    assert page.status_code == 200
    assert "1 conversation, 6 messages, 1 lead" in page.content.decode()

    export = client.post(reverse("privacy_visitor_export", args=["acme"]), {"visitor": VISITOR})
    assert export["Content-Disposition"] == 'attachment; filename="visitor-visitor-zq7x.json"'
    assert json.loads(export.content)["visitor"] == VISITOR

    erased = client.post(reverse("privacy_visitor_erase", args=["acme"]), {"visitor": VISITOR}, follow=True)
    assert "Erased the visitor: 1 conversations, 6 messages and 1 leads are gone." in erased.content.decode()
    again = client.get(reverse("privacy", args=["acme"]), {"visitor": VISITOR})
    assert "Nothing found for that visitor." in again.content.decode()


def test_members_cannot_open_the_privacy_tools(world):
    client = world.client_for(world.bob)
    assert client.get(reverse("privacy", args=["acme"])).status_code == 403
    assert client.post(reverse("privacy_visitor_erase", args=["acme"]), {"visitor": VISITOR}).status_code == 403


def test_the_operator_commands_export_to_a_file_and_erase_with_yes(world, tmp_path):
    visitor_footprint(ConversationFactory(tenant=world.tenant_a).bot, visitor=VISITOR, canary=CANARY)
    out = tmp_path / "visitor.json"
    call_command("visitor_export", tenant="acme", visitor=VISITOR, out=str(out))
    assert json.loads(out.read_text())["conversations"][0]["visitor_id"] == VISITOR
    call_command("visitor_erase", tenant="acme", visitor=VISITOR, yes=True)
    assert rows_mentioning(CANARY) == []
    with pytest.raises(CommandError, match="Nothing found for that visitor."):
        call_command("visitor_export", tenant="acme", visitor=VISITOR)


def test_erasing_by_signed_identity_also_takes_leads_left_under_the_widget_visitor_id(world):
    bot = ConversationFactory(tenant=world.tenant_a).bot
    visitor_footprint(bot, visitor=VISITOR, canary=CANARY)
    LeadFactory(tenant=world.tenant_a, bot=bot, visitor_id=VISITOR, question="Before any conversation")
    with tenant_context(world.tenant_a):
        result = visitor_erase(visitor=f"u-{VISITOR}")
    assert (result.conversations, result.leads) == (1, 2)
    assert rows_mentioning(VISITOR) == [] and rows_mentioning("Before any conversation") == []
