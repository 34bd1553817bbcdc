from __future__ import annotations

import factory

from conversations.models import Conversation, Lead, Message, Trace
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


class LeadFactory(ScopedFactory):
    class Meta:
        model = Lead

    tenant = factory.SubFactory(TenantFactory)
    bot = factory.SubFactory(BotFactory, tenant=factory.SelfAttribute("..tenant"))
    name = "Vera Visitor"
    email = factory.Sequence(lambda n: f"visitor{n}@example.com")


SCOPED_FACTORIES.update(
    {Conversation: ConversationFactory, Message: MessageFactory, Trace: TraceFactory, Lead: LeadFactory}
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
        conversation = ConversationFactory(tenant=tenant, **{f"bot__{k}": v for k, v in bot_fields.items()})
        bot_attach_knowledge_bases(bot=conversation.bot, knowledge_base_ids=[kb.pk])
    return conversation, kb
