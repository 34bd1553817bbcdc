"""Every turn's trace records the time each stage took, for the trace inspector's waterfall."""

from __future__ import annotations

import pytest

from conversations.models import Message
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import ask, chain


def _trace(turn):
    return Message.objects.unscoped().select_related("trace").get(pk=turn.start.assistant_message_id).trace


def test_an_answered_turn_records_every_stage_in_order_on_one_timeline(conversation_a, fake_openai):
    bot = conversation_a.bot
    bot.model_chain = chain("openai:gpt-4o-mini")
    bot.save()
    fake_openai.then(Behaviour(text="Hello there.", ttft=0.05))
    turn = ask(bot, conversation_a, "Hi!")
    timings = _trace(turn).timings
    stages = ["begin", "retrieve", "assemble", "generate", "settle"]
    assert sorted(timings["spans"]) == sorted(stages)
    starts = [timings["spans"][stage][0] for stage in stages]
    assert starts[0] == 0 and starts == sorted(starts), "one after the other, from the turn's start"
    for stage in stages:
        assert timings[f"{stage}_ms"] == timings["spans"][stage][1] >= 0
    # The model waited 50 ms before its first token: generation took at least that long.
    assert timings["generate_ms"] >= 50
    assert starts[3] < timings["first_token_ms"] <= timings["total_ms"]
    # The turn ends with the settle (each figure is rounded to 0.01 ms on its own).
    assert timings["total_ms"] == pytest.approx(starts[4] + timings["settle_ms"], abs=0.02)


def test_a_refused_turn_records_only_the_stages_it_ran(world, conversation_a):
    bot = conversation_a.bot
    bot.blocked_topics = ["weather"]
    bot.save()
    turn = ask(bot, conversation_a, "What is the weather like?")
    assert turn.done.model == "guardrail:blocked_topic"
    assert sorted(_trace(turn).timings["spans"]) == ["begin", "settle"]
