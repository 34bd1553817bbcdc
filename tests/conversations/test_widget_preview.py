"""The widget designer's live preview: a signed preview token lets the real widget open a session
from the dashboard's own origin, for that bot only, for a few minutes, and as playground traffic."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from bots import preview
from bots.preview import preview_token_issue
from chatbot_saas.errors import AppError
from conversations.access import widget_socket_authenticate
from conversations.models import Conversation
from conversations.services import visitor_conversation_for_turn
from tenants.context import tenant_context
from tenants.models import Membership
from tests.bots.factories import BotFactory

OWN_ORIGIN = "http://testserver"  # the Django test client's host: the app's own origin here
SITE = "http://127.0.0.1:8001"


def _session(bot, token, origin=OWN_ORIGIN):
    return Client().post(
        f"/widget/{bot.public_id}/session",
        data=json.dumps({"visitor_id": "designer-0001", "preview": token}),
        content_type="application/json",
        HTTP_ORIGIN=origin,
    )


def test_a_preview_token_opens_a_playground_session_from_the_dashboards_own_origin(world):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[SITE])
    response = _session(bot, preview_token_issue(bot_public_id=bot.public_id, user_id=world.alice.pk))
    assert response.status_code == 200, response.content
    bot_claims = widget_socket_authenticate(
        bot_public_id=bot.public_id, token=response.json()["token"], origin=OWN_ORIGIN
    )
    found, claims = bot_claims
    assert found == bot and claims.channel == "playground" and claims.origin == OWN_ORIGIN
    with tenant_context(world.tenant_a):
        conversation = visitor_conversation_for_turn(
            bot=bot, visitor_id=claims.visitor_id, external_user_id="", conversation_id=None, channel=claims.channel
        )
    assert conversation.channel == Conversation.Channel.PLAYGROUND


def test_without_a_preview_token_the_dashboards_origin_is_not_allowed(world):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[SITE])
    response = Client().post(
        f"/widget/{bot.public_id}/session",
        data=json.dumps({"visitor_id": "designer-0001"}),
        content_type="application/json",
        HTTP_ORIGIN=OWN_ORIGIN,
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"


def test_a_preview_token_for_bot_a_cannot_open_bot_b(world):
    bot_a = BotFactory(tenant=world.tenant_a)
    bot_b = BotFactory(tenant=world.tenant_a)
    response = _session(bot_b, preview_token_issue(bot_public_id=bot_a.public_id, user_id=world.alice.pk))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "preview_invalid",
        "message": "This preview has expired or belongs to another bot. Reload the designer page.",
    }


def test_a_preview_token_expires(world, monkeypatch):
    bot = BotFactory(tenant=world.tenant_a)
    token = preview_token_issue(bot_public_id=bot.public_id, user_id=world.alice.pk)
    monkeypatch.setattr(preview, "PREVIEW_TTL_SECONDS", -1)  # every token is older than that
    response = _session(bot, token)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "preview_invalid"


def test_a_preview_token_is_refused_from_a_foreign_origin(world):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[SITE])
    token = preview_token_issue(bot_public_id=bot.public_id, user_id=world.alice.pk)
    for origin in ("https://evil.example", SITE):
        response = _session(bot, token, origin=origin)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "preview_invalid"
        assert "only works inside the dashboard" in response.json()["error"]["message"]


def test_a_preview_token_stops_working_when_its_member_leaves_the_workspace(world):
    bot = BotFactory(tenant=world.tenant_a)
    token = preview_token_issue(bot_public_id=bot.public_id, user_id=world.bob.pk)
    assert _session(bot, token).status_code == 200
    Membership.objects.unscoped().filter(tenant=world.tenant_a, user=world.bob).delete()
    assert _session(bot, token).json()["error"]["code"] == "preview_invalid"


def test_a_forged_preview_token_is_refused(world):
    bot = BotFactory(tenant=world.tenant_a)
    token = preview_token_issue(bot_public_id=bot.public_id, user_id=world.alice.pk)
    assert _session(bot, token[:-4] + "abcd").json()["error"]["code"] == "preview_invalid"


def test_a_playground_session_token_does_not_open_the_socket_from_another_origin(world):
    bot = BotFactory(tenant=world.tenant_a, allowed_origins=[SITE])
    token = _session(bot, preview_token_issue(bot_public_id=bot.public_id, user_id=world.alice.pk)).json()["token"]
    with pytest.raises(AppError) as refused:
        widget_socket_authenticate(bot_public_id=bot.public_id, token=token, origin="https://evil.example")
    assert refused.value.code == "origin_not_allowed"
