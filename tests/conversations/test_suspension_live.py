"""Suspending a workspace from the admin closes its open sockets within seconds, on a real daphne:
the visitor's widget and a member's playground, while another workspace's socket stays open."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from websockets.asyncio.client import connect

from tenants.models import AuditEvent, Tenant

from .conftest import ORIGIN, ChatServer, closed_with, llm_bot, recv_until, session_token, visitor_socket, ws_connect

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _cookie(client: Client) -> str:
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def playground(chat: ChatServer, cookie: str) -> Any:
    return connect(
        f"{chat.ws_url}/ws/playground/acme/",
        origin=chat.base_url,
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    )


def _new_conversation() -> str:
    return json.dumps({"type": "new_conversation"})


def test_suspending_a_tenant_in_the_admin_closes_its_widget_and_playground_sockets_within_seconds(world, chat):
    bot_a, bot_b = llm_bot(world.tenant_a), llm_bot(world.tenant_b)
    operator = _signed_in(get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-op-123"))
    member_cookie = _cookie(_signed_in(world.alice))

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        kept_token = await session_token(chat.base_url, bot_a.public_id, "visitor-suspend-3")
        widget = await visitor_socket(chat, bot_a, "visitor-suspend-1")
        other = await visitor_socket(chat, bot_b, "visitor-suspend-2")
        async with playground(chat, member_cookie) as member:
            # A round trip on each: every socket is open and in its tenant's group.
            for ws in (widget, other, member):
                await ws.send(_new_conversation())
                await recv_until(ws, "conversation")
            await asyncio.to_thread(
                operator.post, "/admin/tenants/tenant/", {"action": "suspend", "_selected_action": [world.tenant_a.pk]}
            )
            seen["widget"] = await closed_with(widget, timeout=10)
            seen["playground"] = await closed_with(member, timeout=10)
        await other.send(_new_conversation())
        seen["other"] = (await recv_until(other, "conversation"))[-1]
        await other.close()
        # A socket opened afterwards, even with a token issued before, is refused at once.
        async with ws_connect(chat, bot_a.public_id, kept_token) as late:
            seen["late"] = await closed_with(late, timeout=10)
        async with httpx.AsyncClient(base_url=chat.base_url, timeout=10) as http:
            seen["session"] = await http.post(
                f"/widget/{bot_a.public_id}/session", json={"visitor_id": "v-4"}, headers={"Origin": ORIGIN}
            )
        return seen

    seen = asyncio.run(scenario())
    for name in ("widget", "playground", "late"):
        code, frames = seen[name]
        assert code == 4403, name
        assert frames[-1]["code"] == "tenant_suspended", name
    assert seen["other"]["type"] == "conversation", "another workspace's socket stays open"
    assert seen["session"].status_code == 403 and seen["session"].json()["error"]["code"] == "tenant_suspended"
    assert Tenant.objects.get(pk=world.tenant_a.pk).status == "suspended"
    assert AuditEvent.objects.filter(action="tenant.suspend", tenant=world.tenant_a).count() == 1
