"""POST /widget/<bot public id>/session: the widget's first call, from another origin."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from conversations.access import identity_hmac
from conversations.models import Message
from conversations.tokens import session_token_verify
from tenants.services import tenant_suspend
from tests.bots.factories import BotFactory
from tests.conversations.factories import ConversationFactory, MessageFactory

ORIGIN = "http://127.0.0.1:8001"


def _post(bot_public_id: str, body: object = None, origin: str | None = ORIGIN, raw: bytes | None = None):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    data = raw if raw is not None else json.dumps(body if body is not None else {"visitor_id": "visitor-0001"})
    return Client().post(f"/widget/{bot_public_id}/session", data=data, content_type="application/json", **headers)


def test_an_allowed_origin_gets_a_token_bound_to_bot_visitor_and_origin(db):
    bot = BotFactory(welcome_message="Hello there")
    response = _post(bot.public_id)
    assert response.status_code == 200
    body = response.json()
    assert body["bot"]["welcome_message"] == "Hello there" and body["history"] == [] and body["expires_in"] == 900
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    claims = session_token_verify(token=body["token"], bot_public_id=bot.public_id, origin=ORIGIN)
    assert claims.visitor_id == "visitor-0001"


def test_the_session_returns_the_visitors_latest_conversation_history_only(db):
    bot = BotFactory()
    mine = ConversationFactory(tenant=bot.tenant, bot=bot, visitor_id="visitor-0001")
    MessageFactory(tenant=bot.tenant, conversation=mine, role=Message.Role.USER, content="hi")
    MessageFactory(tenant=bot.tenant, conversation=mine, content="hello!", citations=[{"n": 1, "title": "Doc"}])
    theirs = ConversationFactory(tenant=bot.tenant, bot=bot, visitor_id="visitor-9999")
    MessageFactory(tenant=bot.tenant, conversation=theirs, content="secret of someone else")
    body = _post(bot.public_id).json()
    assert body["conversation_id"] == mine.pk
    assert [m["content"] for m in body["history"]] == ["hi", "hello!"]
    assert body["history"][1]["citations"][0]["title"] == "Doc"


@pytest.mark.parametrize("origin", ["https://evil.example", None, "null"])
def test_a_wrong_or_missing_origin_is_refused(db, origin):
    bot = BotFactory()
    response = _post(bot.public_id, origin=origin)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "token" not in response.json()


def test_an_unknown_bot_is_404_and_a_suspended_tenant_is_403(db):
    assert _post("bot_doesnotexist").json()["error"]["code"] == "bot_not_found"
    bot = BotFactory()
    tenant_suspend(tenant=bot.tenant)
    response = _post(bot.public_id)
    assert response.status_code == 403 and response.json()["error"]["code"] == "tenant_suspended"


def test_a_signed_identity_is_accepted_and_a_forged_one_refused(db):
    bot = BotFactory()
    good = {"visitor_id": "visitor-0001", "identity": {"id": "u1", "hmac": identity_hmac(bot=bot, user_id="u1")}}
    token = _post(bot.public_id, good).json()["token"]
    assert session_token_verify(token=token, bot_public_id=bot.public_id, origin=ORIGIN).external_user_id == "u1"
    forged = {"visitor_id": "visitor-0001", "identity": {"id": "u2", "hmac": identity_hmac(bot=bot, user_id="u1")}}
    response = _post(bot.public_id, forged)
    assert response.status_code == 403 and response.json()["error"]["code"] == "identity_invalid"
    response = _post(bot.public_id, {"visitor_id": "visitor-0001", "identity": "u1"})
    assert response.json()["error"]["code"] == "identity_invalid"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (json.dumps({"visitor_id": "short"}).encode(), "visitor_id_invalid"),
        (json.dumps({"visitor_id": "<script>alert(1)</script>"}).encode(), "visitor_id_invalid"),
        (json.dumps({"visitor_id": 12345678}).encode(), "visitor_id_invalid"),
        (json.dumps({"visitor_id": "v" * 5000}).encode(), "body_too_large"),
    ],
)
def test_malformed_hostile_and_oversized_bodies_get_clear_codes(db, raw, code):
    bot = BotFactory()
    response = _post(bot.public_id, raw=raw)
    assert response.status_code in (400, 413)
    assert response.json()["error"]["code"] == code


def test_the_cors_preflight_is_answered_and_get_is_refused(db):
    bot = BotFactory()
    preflight = Client().options(f"/widget/{bot.public_id}/session", HTTP_ORIGIN=ORIGIN)
    assert preflight.status_code == 204 and preflight["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert Client().get(f"/widget/{bot.public_id}/session").status_code == 405


def test_session_requests_are_rate_limited_per_ip(db, settings):
    settings.RATE_LIMIT_WIDGET_SESSION = "3/60"
    bot = BotFactory()
    statuses = [_post(bot.public_id).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = _post(bot.public_id)
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused["Retry-After"]) >= 1
