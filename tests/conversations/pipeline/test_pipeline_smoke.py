from __future__ import annotations

from conversations.models import Message
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask, chain


def test_an_openai_answer_streams_and_settles_complete(fake_openai, conversation_a):
    bot = conversation_a.bot
    bot.model_chain = chain("openai:gpt-4o-mini")
    bot.save()
    fake_openai.then(Behaviour(text="Hello there, visitor."))
    turn = ask(bot, conversation_a, "Hi!")
    assert turn.kinds[0] == "Start"
    assert turn.text == "Hello there, visitor."
    assert turn.done.model == "openai:gpt-4o-mini"
    message = Message.objects.unscoped().get(pk=turn.start.assistant_message_id)
    assert message.status == "complete" and message.content == "Hello there, visitor."
    assert message.trace.attempts[-1]["outcome"] == "ok"
