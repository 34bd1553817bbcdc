"""SSE, the OpenAI-compatible endpoint (driven by the official `openai` SDK), quotas, metrics and the
stale-stream watchdog, against a real daphne."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import httpx
import openai
import pytest

from billing.models import Plan, Subscription
from billing.services import subscription_comp
from chatbot_saas import runtime
from conversations.models import Conversation, Message
from conversations.services import dangerously_settle_stale_streaming
from conversations.tasks import settle_stale_streaming
from knowledge.models import Document
from knowledge.services import document_create_from_text, knowledge_base_create
from tenants.context import tenant_context
from tenants.services import api_key_create
from tests.conversations.factories import ConversationFactory, MessageFactory
from tests.factories import UsageCounterFactory
from tests.fakes.base import Behaviour
from tests.support.servers import daphne_server

from .conftest import LONG_ANSWER, llm_bot, recv, recv_until, text_of, visitor_socket

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HANDBOOK = """# Handbook

## Refunds
Customers can request a refund within 30 days of purchase by emailing billing support.

## Passwords
To reset your password, open the login page and click "Forgot password".
"""


def _key(tenant, scopes=("chat", "bots:read")) -> str:
    subscription_comp(tenant=tenant, plan_slug="starter")  # a plan with API access
    with tenant_context(tenant):
        return api_key_create(tenant=tenant, name="sdk", scopes=list(scopes))[1]


def _sdk(chat, raw: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{chat.base_url}/v1", api_key=raw, max_retries=0, timeout=60)


def test_a_conversation_turn_returns_the_stored_answer_as_json(world, chat):
    bot = llm_bot(world.tenant_a)
    chat.llm.default = Behaviour(text="Our refund window is thirty days.")
    api = httpx.Client(base_url=chat.base_url, timeout=30, headers={"Authorization": f"Bearer {_key(world.tenant_a)}"})
    created = api.post("/api/v1/conversations", json={"bot_id": bot.pk, "external_user_id": "crm-7"})
    assert created.status_code == 201
    conversation_id = created.json()["id"]
    conversation = Conversation.objects.unscoped().get(pk=conversation_id)
    assert conversation.channel == "api" and conversation.api_key is not None
    response = api.post(f"/api/v1/conversations/{conversation_id}/messages", json={"text": "Refunds?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"]["content"] == "Our refund window is thirty days."
    assert body["message"]["status"] == "complete" and body["usage"]["tokens_out"] > 0
    listed = api.get(f"/api/v1/conversations/{conversation_id}/messages").json()
    assert [(m["role"], m["content"]) for m in listed] == [
        ("user", "Refunds?"),
        ("assistant", "Our refund window is thirty days."),
    ]


def test_a_message_streams_as_server_sent_events(world, chat):
    bot = llm_bot(world.tenant_a)
    raw = _key(world.tenant_a)
    conversation = ConversationFactory(tenant=world.tenant_a, bot=bot, channel="api")
    events = []
    with httpx.Client(base_url=chat.base_url, timeout=30, headers={"Authorization": f"Bearer {raw}"}) as client:
        with client.stream(
            "POST", f"/api/v1/conversations/{conversation.pk}/messages", json={"text": "hi", "stream": True}
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
    assert events[0]["type"] == "start" and events[-1]["type"] == "end", events
    assert [e.get("seq") for e in events[1:]] == list(range(1, len(events))), str(
        [(e["type"], e.get("seq")) for e in events]
    )
    assert text_of(events) == LONG_ANSWER == events[-1]["content"]


def test_the_openai_sdk_streams_a_cited_answer_from_a_bot(world, chat, live_worker):
    with tenant_context(world.tenant_a):
        kb = knowledge_base_create(tenant=world.tenant_a, name="Handbook")
        # Queued on commit; the real worker ingests it.
        document = document_create_from_text(knowledge_base=kb, title="Handbook", text=HANDBOOK)
    deadline = time.monotonic() + 240
    while Document.objects.unscoped().get(pk=document.pk).status != "ready" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert Document.objects.unscoped().get(pk=document.pk).status == "ready"
    bot = llm_bot(world.tenant_a, answer_policy="knowledge_only")
    bot.knowledge_bases.add(kb)
    chat.llm.default = Behaviour(text="You can get a refund within 30 days [1].", tokens_per_second=200)
    client = _sdk(chat, _key(world.tenant_a))

    stream = client.chat.completions.create(
        model=bot.public_id,
        messages=[{"role": "user", "content": "How long do I have to ask for a refund?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You can get a refund within 30 days [1]."
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert final.choices[0].finish_reason == "stop"
    citations = final.model_extra["citations"]
    assert citations[0]["n"] == 1 and citations[0]["title"] == "Handbook"
    assert "30 days" in citations[0]["snippet"]
    assert chunks[-1].usage.completion_tokens > 0
    answer = Message.objects.unscoped().get(pk=int(chunks[0].id.removeprefix("chatcmpl-")))
    assert answer.status == "complete" and answer.conversation.channel == "api"


def test_the_openai_sdk_works_without_streaming_and_sees_models_and_errors(world, chat):
    bot = llm_bot(world.tenant_a)
    llm_bot(world.tenant_b)
    chat.llm.default = Behaviour(text="Plain answer here.")
    client = _sdk(chat, _key(world.tenant_a))
    completion = client.chat.completions.create(
        model=bot.public_id,
        messages=[
            {"role": "system", "content": "ignored: the bot's prompt rules"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        ],
    )
    assert completion.choices[0].message.content == "Plain answer here."
    assert completion.usage.total_tokens > 0
    conversation = Conversation.objects.unscoped().get(
        pk=Message.objects.unscoped().get(pk=int(completion.id.removeprefix("chatcmpl-"))).conversation_id
    )
    stored = list(Message.objects.unscoped().filter(conversation=conversation).values_list("role", "content"))
    assert stored[:3] == [("user", "first question"), ("assistant", "first answer"), ("user", "second question")]
    assert [m.id for m in client.models.list()] == [bot.public_id]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="bot_nope", messages=[{"role": "user", "content": "x"}])
    other_tenant_bot = llm_bot(world.tenant_b, name="Theirs")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=other_tenant_bot.public_id, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        _sdk(chat, "cbk_nope_nope").models.list()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=bot.public_id, messages=[{"role": "assistant", "content": "x"}])


def test_a_tenant_over_its_message_quota_is_refused_everywhere_until_it_upgrades(world, chat):
    bot = llm_bot(world.tenant_a)
    raw = _key(world.tenant_a)
    tiny = Plan.objects.create(name="Tiny", slug="tiny", max_messages_per_month=3, api_access=True)
    pro = Plan.objects.create(name="Roomy", slug="roomy", max_messages_per_month=10_000, api_access=True)
    Subscription.objects.unscoped().filter(tenant=world.tenant_a).update(plan=tiny)
    UsageCounterFactory(tenant=world.tenant_a, messages=3)
    client = _sdk(chat, raw)

    async def socket_turn() -> list[dict]:
        async with await visitor_socket(chat, bot, "visitor-quota-0001") as ws:
            await ws.send(json.dumps({"type": "message", "text": "anyone?"}))
            return await recv_until(ws, "end")

    frames = asyncio.run(socket_turn())
    error = next(f for f in frames if f["type"] == "error")
    assert error["code"] == "quota_exceeded" and "Upgrade" in error["message"]
    with pytest.raises(openai.APIStatusError) as excinfo:
        client.chat.completions.create(model=bot.public_id, messages=[{"role": "user", "content": "x"}])
    assert excinfo.value.status_code == 402 and excinfo.value.body["code"] == "quota_exceeded"
    conversation = ConversationFactory(tenant=world.tenant_a, bot=bot, channel="api")
    rest = httpx.post(
        f"{chat.base_url}/api/v1/conversations/{conversation.pk}/messages",
        json={"text": "x"},
        headers={"Authorization": f"Bearer {raw}"},
        timeout=30,
    )
    assert rest.status_code == 402 and rest.json()["error"]["code"] == "quota_exceeded"

    Subscription.objects.unscoped().filter(tenant=world.tenant_a).update(plan=pro)
    # The server remembers a bot's turn configuration (the plan among it) for TURN_CONFIG_TTL;
    # a change made by another process, as here, applies once that has passed.
    time.sleep(runtime.TURN_CONFIG_TTL + 0.5)
    assert asyncio.run(socket_turn())[-1]["status"] == "complete"
    completion = client.chat.completions.create(model=bot.public_id, messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == LONG_ANSWER


def test_metrics_count_turns_and_refusals(world, chat):
    bot = llm_bot(world.tenant_a)

    async def turn() -> None:
        async with await visitor_socket(chat, bot, "visitor-metrics-01") as ws:
            await ws.send(json.dumps({"type": "message", "text": "count me"}))
            await recv_until(ws, "end")

    asyncio.run(turn())
    body = httpx.get(f"{chat.base_url}/metrics", timeout=10).text
    assert 'chat_turns_total{channel="widget",outcome="complete"}' in body
    assert "chat_time_to_first_token_seconds_bucket" in body
    assert 'chat_tokens_total{direction="out",model="openai:gpt-4o-mini"}' in body
    assert "chat_rate_limit_refusals_total" in body and "chat_breaker_open" in body


def test_metrics_require_a_token_in_production_even_when_none_is_configured(db, client, settings):
    settings.PRODUCTION, settings.METRICS_TOKEN = True, ""
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_metrics_stay_open_in_local_runs_without_a_token(db, client, settings):
    settings.PRODUCTION, settings.METRICS_TOKEN = False, ""
    assert client.get("/metrics").status_code == 200


def test_metrics_require_the_token_when_one_is_set(db, client, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_a_server_dying_mid_answer_leaves_the_message_partial_after_the_watchdog(world, chat):
    bot = llm_bot(world.tenant_a)
    chat.llm.default = Behaviour(text=LONG_ANSWER, tokens_per_second=20)
    env = {"OPENAI_API_KEY": chat.llm.api_key, "OPENAI_BASE_URL": chat.llm.base_url, "KNOWLEDGE_PRELOAD_EMBEDDER": "0"}
    with daphne_server(**env) as (base_url, process):
        doomed = type(chat)(base_url, chat.llm, process)

        async def start_then_die() -> int:
            async with await visitor_socket(doomed, bot, "visitor-doomed-01") as ws:
                await ws.send(json.dumps({"type": "message", "text": "long one please"}))
                start = await recv(ws)
                await recv(ws)
                process.process.kill()  # SIGKILL: no clean shutdown, the answer is cut off
                return start["message_id"]

        message_id = asyncio.run(start_then_die())
    assert Message.objects.unscoped().get(pk=message_id).status == "streaming"
    # The beat job, as it would run STREAMING_STALE_SECONDS later:
    assert dangerously_settle_stale_streaming(older_than=timedelta(0)) >= 1
    assert Message.objects.unscoped().get(pk=message_id).status == "partial"


def test_the_watchdog_runs_in_a_real_worker_and_leaves_fresh_streams_alone(world, live_worker, settings):
    conversation = ConversationFactory(tenant=world.tenant_a)
    stale = MessageFactory(tenant=world.tenant_a, conversation=conversation, status="streaming")
    Message.objects.unscoped().filter(pk=stale.pk).update(updated=stale.updated - timedelta(hours=1))
    fresh = MessageFactory(tenant=world.tenant_a, conversation=conversation, status="streaming")
    done = MessageFactory(tenant=world.tenant_a, conversation=conversation, status="complete")
    # This is the test process, not a worker: earlier in-process eager task runs can leave Celery
    # believing it is inside a task, which would refuse the join.
    result = settle_stale_streaming.delay().get(timeout=60, disable_sync_subtasks=False)
    assert result == 1
    statuses = dict(Message.objects.unscoped().filter(conversation=conversation).values_list("pk", "status"))
    assert statuses == {stale.pk: "partial", fresh.pk: "streaming", done.pk: "complete"}
    assert settings.CELERY_BEAT_SCHEDULE["conversations-settle-stale-streaming"]["task"] == (
        "conversations.tasks.settle_stale_streaming"
    )
