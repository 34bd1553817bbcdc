"""Human handoff end to end on two real daphne processes: the visitor's socket on one, the
agent's inbox socket on the other, so every live frame crosses the Redis channel layer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from websockets.asyncio.client import connect

from conversations.models import Conversation, HandoffStatus, Lead, Message
from tenants.models import Membership
from tests.bots.factories import HandoffSettingsFactory

from .conftest import ChatServer, _chat_server, closed_with, llm_bot, recv_until, visitor_socket

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def agent_server(django_db_setup: None) -> Iterator[ChatServer]:
    """A second daphne process: agents connect here, visitors to the shared `chat` server."""
    yield from _chat_server("daphne")


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _cookie(client: Client) -> str:
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def inbox(server: ChatServer, cookie: str | None, slug: str = "acme") -> Any:
    headers = {"Cookie": cookie} if cookie else {}
    return connect(
        f"{server.ws_url}/ws/inbox/{slug}/", origin=server.base_url, additional_headers=headers, open_timeout=10
    )


def _frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


@pytest.fixture
def handoff_bot(world):
    bot = llm_bot(world.tenant_a)
    HandoffSettingsFactory(tenant=world.tenant_a, bot=bot, lead_when="never")
    return bot


def test_a_visitor_and_an_agent_on_different_servers_talk_live_and_the_bot_answers_again_once_handed_back(
    world, chat, agent_server, handoff_bot
):
    alice = _signed_in(world.alice)

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with inbox(agent_server, _cookie(alice)) as agent:
            visitor = await visitor_socket(chat, handoff_bot, "visitor-handoff-1")
            await visitor.send(_frame("handoff_request", page_url="https://shop.example/pricing"))
            waiting = (await recv_until(visitor, "handoff"))[-1]
            assert waiting["status"] == "waiting"
            conversation_id = waiting["conversation_id"]
            assert (await recv_until(agent, "inbox_changed"))[-1]["conversation_id"] == conversation_id

            await asyncio.to_thread(alice.post, f"/t/acme/inbox/{conversation_id}/take/")
            seen["joined"] = (await recv_until(visitor, "handoff"))[-1]
            await agent.send(_frame("watch", conversation_id=conversation_id))
            await recv_until(agent, "watching")
            await agent.send(_frame("reply", conversation_id=conversation_id, text="Hello, I'm a person.", client_id=1))
            seen["reply_ok"] = (await recv_until(agent, "reply_ok"))[-1]
            seen["live"] = (await recv_until(visitor, "agent_message"))[-1]

            # While a person has it, the bot stays quiet: the question is stored and shown to the agent.
            await visitor.send(_frame("message", text="Are you a real person?", client_id="q1"))
            seen["visitor_frames"] = await recv_until(visitor, "sent")
            seen["agent_saw"] = (await recv_until(agent, "visitor_message"))[-1]

            # The visitor goes away; the agent's next message is stored and delivered on return,
            # this time through the agent's server.
            await visitor.close()
            await agent.send(_frame("reply", conversation_id=conversation_id, text="Still there?", client_id=2))
            await recv_until(agent, "reply_ok")
            back = await visitor_socket(agent_server, handoff_bot, "visitor-handoff-1")
            await back.send(_frame("handoff_sync", after_id=seen["live"]["id"]))
            seen["synced"] = await recv_until(back, "handoff_synced")

            await asyncio.to_thread(alice.post, f"/t/acme/inbox/{conversation_id}/release/")
            seen["returned"] = (await recv_until(back, "handoff"))[-1]
            await back.send(_frame("message", text="Thanks. What are your prices?", client_id="q2"))
            seen["bot"] = (await recv_until(back, "end"))[-1]
            await back.close()
        seen["conversation_id"] = conversation_id
        return seen

    seen = asyncio.run(scenario())
    assert seen["joined"]["status"] == "assigned" and seen["joined"]["text"].endswith(" joined")
    assert seen["live"]["text"] == "Hello, I'm a person." and seen["live"]["id"] == seen["reply_ok"]["id"]
    assert [f["type"] for f in seen["visitor_frames"]] == ["sent"], "no answer started while a person has it"
    assert seen["agent_saw"]["text"] == "Are you a real person?"
    synced = seen["synced"]
    assert [f["type"] for f in synced] == ["handoff", "agent_message", "handoff_synced"]
    assert synced[0]["status"] == "assigned" and synced[1]["text"] == "Still there?"
    assert seen["returned"]["status"] == "returned"
    assert seen["bot"]["status"] == "complete"
    conversation = Conversation.objects.unscoped().get(pk=seen["conversation_id"])
    assert conversation.handoff_status == HandoffStatus.RETURNED and conversation.page_url.endswith("/pricing")
    agent_messages = Message.objects.unscoped().filter(conversation=conversation, role=Message.Role.AGENT)
    assert [(m.content, m.author_id) for m in agent_messages] == [
        ("Hello, I'm a person.", world.alice.pk),
        ("Still there?", world.alice.pk),
    ]


def test_the_inbox_socket_is_a_404_for_strangers_members_without_the_agent_permission_and_other_workspaces(
    world, agent_server
):
    conversation_a = Conversation.objects.unscoped().create(
        tenant=world.tenant_a, bot=llm_bot(world.tenant_a), handoff_status=HandoffStatus.WAITING
    )
    bob, charlie = _cookie(_signed_in(world.bob)), _cookie(_signed_in(world.charlie))

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, cookie, slug in (("anonymous", None, "acme"), ("bob", bob, "acme"), ("charlie", charlie, "acme")):
            async with inbox(agent_server, cookie, slug) as ws:
                out[name] = await closed_with(ws)
        async with inbox(agent_server, charlie, "bravo") as ws:  # charlie's own inbox, acme's conversation id
            await ws.send(_frame("watch", conversation_id=conversation_a.pk))
            out["watch"] = (await recv_until(ws, "error"))[-1]
            await ws.send(_frame("reply", conversation_id=conversation_a.pk, text="hi", client_id=9))
            out["reply"] = (await recv_until(ws, "error"))[-1]
        return out

    out = asyncio.run(scenario())
    for name in ("anonymous", "bob", "charlie"):
        code, frames = out[name]
        assert code == 4404 and frames[0]["code"] == "workspace_not_found", name
    assert out["watch"]["code"] == "not_found"
    assert out["reply"]["code"] == "not_found" and out["reply"]["client_id"] == 9
    assert not Message.objects.unscoped().filter(conversation=conversation_a).exists()
    Membership.objects.unscoped().filter(tenant=world.tenant_a, user=world.bob).update(is_agent=True)

    async def as_agent() -> dict:
        async with inbox(agent_server, bob) as ws:
            await ws.send(_frame("watch", conversation_id=conversation_a.pk))
            return (await recv_until(ws, "watching"))[-1]

    assert asyncio.run(as_agent())["conversation_id"] == conversation_a.pk


def test_the_lead_form_is_checked_on_the_server_and_rate_limited_per_visitor(world, chat, handoff_bot):
    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        ws = await visitor_socket(chat, handoff_bot, "visitor-lead-1")
        await ws.send(_frame("lead", reason="outside_hours", fields={"email": "nope", "name": "V" * 200}))
        out["invalid"] = (await recv_until(ws, "error"))[-1]
        good = {"email": "vera@example.com", "name": "Vera", "question": "Call me back?"}
        await ws.send(_frame("lead", reason="outside_hours", fields=good))
        out["ok"] = (await recv_until(ws, "lead_ok"))[-1]
        await ws.close()
        return out

    async def spam() -> list[str]:
        ws = await visitor_socket(chat, handoff_bot, "visitor-lead-2")
        kinds = []
        for _ in range(5):
            await ws.send(_frame("lead", fields={"email": "spam@example.com"}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            kinds.append(frame["type"] if frame["type"] == "lead_ok" else frame["code"])
        await ws.close()
        return kinds

    out = asyncio.run(scenario())
    assert out["invalid"]["code"] == "lead_invalid" and set(out["invalid"]["fields"]) == {"email", "name"}
    lead = Lead.objects.unscoped().get(pk=out["ok"]["lead_id"])
    assert (lead.email, lead.reason, lead.question) == ("vera@example.com", "outside_hours", "Call me back?")
    assert asyncio.run(spam()) == ["lead_ok", "lead_ok", "lead_ok", "rate_limited", "rate_limited"]


def test_suspending_a_workspace_closes_its_open_inboxes(world, agent_server):
    from tenants.services import tenant_suspend

    cookie = _cookie(_signed_in(world.alice))

    async def scenario() -> tuple[int | None, list[dict]]:
        async with inbox(agent_server, cookie) as ws:
            await ws.send(_frame("typing", conversation_id=0, on=True))  # a round trip: the socket is in its group
            await recv_until(ws, "error")
            await asyncio.to_thread(tenant_suspend, tenant=world.tenant_a)
            return await closed_with(ws)

    code, frames = asyncio.run(scenario())
    assert code == 4403 and frames[-1]["code"] == "tenant_suspended"
