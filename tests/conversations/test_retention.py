"""Retention: conversations last active before a workspace's cutoff go nightly, with everything
under them; newer ones, and workspaces without a retention period, keep theirs."""

from __future__ import annotations

from datetime import timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from chatbot_saas.celery import app
from conversations.models import Conversation, Message, Trace
from conversations.privacy_services import retention_enforce
from conversations.streams import stream_append, stream_key
from tests.conversations.factories import ConversationFactory, MessageFactory, TraceFactory
from tests.support.residue import redis_keys, rows_mentioning


def _conversation(tenant, *, days_ago: float, text: str) -> Conversation:
    when = timezone.now() - timedelta(days=days_ago)
    conversation = ConversationFactory(tenant=tenant, started=when, last_active=when)
    MessageFactory(tenant=tenant, conversation=conversation, role=Message.Role.USER, content=text, created=when)
    TraceFactory(tenant=tenant, message__conversation=conversation, message__content=f"About {text}")
    return conversation


def _set_retention(tenant, days: int | None) -> None:
    tenant.conversation_retention_days = days
    tenant.save(update_fields=["conversation_retention_days"])


def test_conversations_past_the_cutoff_are_deleted_with_everything_under_them(world):
    _set_retention(world.tenant_a, 30)
    old = _conversation(world.tenant_a, days_ago=31, text="Oldkiwi")
    recent = _conversation(world.tenant_a, days_ago=29, text="Newplum")
    no_retention = _conversation(world.tenant_b, days_ago=400, text="Ancientfig")

    assert retention_enforce() == {"acme": 1}

    assert not Conversation.objects.unscoped().filter(pk=old.pk).exists()
    assert rows_mentioning("Oldkiwi") == []
    assert not Trace.objects.unscoped().filter(message__conversation_id=old.pk).exists()
    assert set(Conversation.objects.unscoped().values_list("pk", flat=True)) == {recent.pk, no_retention.pk}
    assert rows_mentioning("Newplum") and rows_mentioning("Ancientfig")


def test_the_cutoff_follows_last_activity_not_the_start(world):
    _set_retention(world.tenant_a, 7)
    long_running = _conversation(world.tenant_a, days_ago=60, text="Longpear")
    Conversation.objects.unscoped().filter(pk=long_running.pk).update(last_active=timezone.now() - timedelta(days=1))
    assert retention_enforce() == {"acme": 0}
    assert Conversation.objects.unscoped().filter(pk=long_running.pk).exists()


def test_the_answers_resume_buffers_go_with_the_conversation(world):
    _set_retention(world.tenant_a, 1)
    old = _conversation(world.tenant_a, days_ago=2, text="Bufferlime")
    message = Message.objects.unscoped().filter(conversation=old).first()
    async_to_sync(stream_append)(message_id=message.pk, frames=[{"type": "delta", "seq": 1, "text": "x"}])
    assert stream_key(message.pk) in redis_keys()
    retention_enforce()
    assert stream_key(message.pk) not in redis_keys()


def test_the_command_dry_run_counts_and_deletes_nothing(world, capsys):
    _set_retention(world.tenant_a, 10)
    _conversation(world.tenant_a, days_ago=11, text="Drycherry")
    call_command("retention_enforce", dry_run=True)
    assert "acme: would delete 1 conversations" in capsys.readouterr().out
    assert rows_mentioning("Drycherry")
    call_command("retention_enforce")
    assert "acme: deleted 1 conversations" in capsys.readouterr().out
    assert rows_mentioning("Drycherry") == []


def test_beat_runs_the_retention_task_once_a_day():
    entry = settings.CELERY_BEAT_SCHEDULE["conversations-retention-enforce"]
    assert entry["schedule"] == 24 * 60 * 60
    assert entry["task"] in app.tasks


def test_admins_set_and_clear_the_retention_period_on_the_settings_page(world):
    client = world.client_for(world.alice)
    url = reverse("workspace_settings", args=["acme"])
    page = client.post(url, {"name": "Acme", "conversation_retention_days": "90"}, follow=True)
    assert "Conversations are now kept for 90 days." in page.content.decode()
    world.tenant_a.refresh_from_db()
    assert world.tenant_a.conversation_retention_days == 90
    bad = client.post(url, {"name": "Acme", "conversation_retention_days": "0"})
    assert bad.status_code == 400
    assert "Ensure this value is greater than or equal to 1." in bad.content.decode()
    client.post(url, {"name": "Acme", "conversation_retention_days": ""})
    world.tenant_a.refresh_from_db()
    assert world.tenant_a.conversation_retention_days is None
