from __future__ import annotations

import factory

from conversations.models import Conversation, Message, Trace
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


SCOPED_FACTORIES.update({Conversation: ConversationFactory, Message: MessageFactory, Trace: TraceFactory})
