from __future__ import annotations

import datetime
import time

import factory

from conversations.models import Conversation, DailyQuestion, DailyRollup, GapGroup, GapItem, Lead, Message, Trace
from tests.bots.factories import BotFactory
from tests.factories import SCOPED_FACTORIES, ScopedFactory, TenantFactory


class ConversationFactory(ScopedFactory):
    class Meta:
        model = Conversation

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    visitor_id = factory.Sequence(lambda n: f"visitor-{n}")


class MessageFactory(ScopedFactory):
    class Meta:
        model = Message

    tenant = factory.SubFactory(TenantFactory)
    conversation = factory.SubFactory(ConversationFactory, tenant=factory.SelfAttribute("..tenant"))
    role = Message.Role.ASSISTANT
    content = "An answer."


class TraceFactory(ScopedFactory):
    class Meta:
        model = Trace

    tenant = factory.SubFactory(TenantFactory)
    message = factory.SubFactory(MessageFactory, tenant=factory.SelfAttribute("..tenant"))


class DailyRollupFactory(ScopedFactory):
    class Meta:
        model = DailyRollup

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    day = factory.LazyFunction(lambda: datetime.datetime.now(datetime.UTC).date())


class DailyQuestionFactory(ScopedFactory):
    class Meta:
        model = DailyQuestion

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    day = factory.LazyFunction(lambda: datetime.datetime.now(datetime.UTC).date())
    text = "how do i reset my password"
    count = 1


class LeadFactory(ScopedFactory):
    class Meta:
        model = Lead

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    name = "Vera Visitor"
    email = factory.Sequence(lambda n: f"visitor{n}@example.com")


SCOPED_FACTORIES.update(
    {
        Conversation: ConversationFactory,
        Message: MessageFactory,
        Trace: TraceFactory,
        DailyRollup: DailyRollupFactory,
        DailyQuestion: DailyQuestionFactory,
        Lead: LeadFactory,
    }
)


def conversation_with_document(tenant, *, text: str, **bot_fields):
    """A conversation whose bot (`bot_fields` passed to its factory) has one knowledge base
    "Handbook" holding `text`, ingested in-process: (conversation, knowledge base)."""
    from bots.services import bot_attach_knowledge_bases
    from knowledge.ingestion import document_ingest
    from knowledge.services import document_create_from_text, knowledge_base_create
    from tenants.context import tenant_context

    with tenant_context(tenant):
        kb = knowledge_base_create(tenant=tenant, name="Handbook")
        document = document_create_from_text(knowledge_base=kb, title="Handbook", text=text)
        document_ingest(document_id=document.pk)
        # Under a transactional test a live worker of another test may have claimed the queued
        # ingestion first: wait for whichever run publishes the document.
        deadline = time.monotonic() + 60
        while document.status not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            document.refresh_from_db()
        assert document.status == "ready", document.error_message
        conversation = ConversationFactory(tenant=tenant, **{f"bot__{k}": v for k, v in bot_fields.items()})
        bot_attach_knowledge_bases(bot=conversation.bot, knowledge_base_ids=[kb.pk])
    return conversation, kb


def _unit_vector() -> list[float]:
    return [1.0] + [0.0] * 383


class GapGroupFactory(ScopedFactory):
    class Meta:
        model = GapGroup

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    centroid = factory.LazyFunction(_unit_vector)
    size = 1


class GapItemFactory(ScopedFactory):
    class Meta:
        model = GapItem

    tenant = factory.SubFactory(TenantFactory)
    group = factory.SubFactory(GapGroupFactory, tenant=factory.SelfAttribute("..tenant"))
    message = factory.SubFactory(
        MessageFactory,
        tenant=factory.SelfAttribute("..tenant"),
        conversation__bot=factory.SelfAttribute("...group.bot"),
    )
    conversation = factory.SelfAttribute("message.conversation")
    question = "A question the bot could not answer?"
    kind = GapItem.Kind.UNANSWERED
    embedding = factory.LazyFunction(_unit_vector)


SCOPED_FACTORIES.update({GapGroup: GapGroupFactory, GapItem: GapItemFactory})


def unit_vector(i: int) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(384)]


def visitor_footprint(bot, *, visitor: str, canary: str) -> Conversation:
    """A visitor's footprint, made by the services the widget socket calls: a turn answered by the
    pipeline, its resume stream, rate-limit buckets, a handoff channel group, feedback, memory, a
    knowledge-gap item and a lead (the privacy tests' residue)."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from conversations.handoff_bus import conversation_group
    from conversations.handoff_consumer import lead_buckets
    from conversations.pipeline.memory import conversation_memory_refresh
    from conversations.ratelimit import rate_limit_take_sync, visitor_buckets
    from conversations.services import message_feedback_set
    from conversations.streams import stream_append
    from tenants.context import tenant_context
    from tests.fakes.fixtures import ask

    conversation = ConversationFactory(tenant=bot.tenant, bot=bot, visitor_id=visitor, external_user_id=f"u-{visitor}")
    with tenant_context(bot.tenant):
        turn = ask(bot, conversation, f"My name is {canary} and I ask about {canary} shipping")
        ask(bot, conversation, f"Still about {canary}?")
        ask(bot, conversation, "One more question")
        answer = Message.objects.get(pk=turn.start.assistant_message_id)
        message_feedback_set(message=answer, value="down", comment=f"{canary} was wrong")
        conversation_memory_refresh(conversation_id=conversation.pk)
        frames = [{"type": "delta", "message_id": answer.pk, "seq": 1, "text": canary}]
        async_to_sync(stream_append)(message_id=answer.pk, frames=frames)
        rate_limit_take_sync(
            visitor_buckets(tenant_id=bot.tenant_id, bot_id=bot.pk, visitor_id=visitor, ip="203.0.113.5")
        )
        rate_limit_take_sync(lead_buckets(bot_id=bot.pk, visitor_id=visitor, ip="203.0.113.5"))
    async_to_sync(get_channel_layer().group_add)(conversation_group(conversation.pk), "specific.visitor-channel")
    GapItemFactory(
        tenant=bot.tenant,
        group__bot=bot,
        message=answer,
        conversation=conversation,
        question=canary,
        embedding=unit_vector(0),
    )
    LeadFactory(tenant=bot.tenant, bot=bot, conversation=conversation, visitor_id=visitor, question=f"Call {canary}")
    return conversation
