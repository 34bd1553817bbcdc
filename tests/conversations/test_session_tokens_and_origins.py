"""Session tokens, origin checks and signed visitor identities: the visitor channel's front door."""

from __future__ import annotations

import pytest

from bots.models import Bot
from chatbot_saas.errors import AppError
from conversations.access import (
    identity_hmac,
    identity_verify,
    origin_allowed,
    origin_normalize,
    widget_bot_resolve,
    widget_socket_authenticate,
)
from conversations.tokens import SessionClaims, session_token_issue, session_token_verify
from tenants.services import tenant_suspend
from tests.bots.factories import BotFactory

ORIGIN = "http://127.0.0.1:8001"


def _token(bot_public_id: str = "bot_x", origin: str = ORIGIN, visitor: str = "visitor-0001") -> str:
    return session_token_issue(claims=SessionClaims(bot_public_id, visitor, origin))


def test_a_token_verifies_for_its_bot_and_origin_and_carries_the_visitor():
    claims = session_token_verify(token=_token(), bot_public_id="bot_x", origin=ORIGIN)
    assert claims.visitor_id == "visitor-0001" and claims.origin == ORIGIN


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a" * 5000, _token()[:-3] + "abc", _token().replace(":", ";")],
    ids=["missing", "garbage", "huge", "tampered-signature", "mangled"],
)
def test_missing_or_forged_tokens_are_refused(token):
    with pytest.raises(AppError) as excinfo:
        session_token_verify(token=token, bot_public_id="bot_x", origin=ORIGIN)
    assert excinfo.value.code == "token_invalid"


def test_a_token_for_another_bot_or_origin_is_refused():
    for bot_public_id, origin in (("bot_other", ORIGIN), ("bot_x", "https://evil.example")):
        with pytest.raises(AppError) as excinfo:
            session_token_verify(token=_token(), bot_public_id=bot_public_id, origin=origin)
        assert excinfo.value.code == "token_invalid"


def test_an_expired_token_is_refused_with_its_own_code(settings):
    token = _token()
    settings.WIDGET_SESSION_TTL_SECONDS = -1  # every token is older than that
    with pytest.raises(AppError) as excinfo:
        session_token_verify(token=token, bot_public_id="bot_x", origin=ORIGIN)
    assert excinfo.value.code == "token_expired"


def test_a_token_signed_with_another_secret_is_refused(settings):
    token = _token()
    settings.SECRET_KEY = "another-secret-key-entirely-0123456789"
    with pytest.raises(AppError):
        session_token_verify(token=token, bot_public_id="bot_x", origin=ORIGIN)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("https://Example.com", "https://example.com"),
        ("https://example.com:443/", "https://example.com"),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("null", ""),
        ("file://x", ""),
        ("javascript:alert(1)", ""),
        ("https://user:pw@example.com", ""),
        ("http://example.com:99999", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_origins_are_normalized_and_non_web_origins_rejected(raw, normalized):
    assert origin_normalize(raw) == normalized


def test_an_empty_allow_list_denies_every_origin_unless_the_bot_allows_any(db):
    bot = BotFactory(allowed_origins=[])
    assert not origin_allowed(bot=bot, origin="https://example.com")
    bot.allow_any_origin = True
    assert origin_allowed(bot=bot, origin="https://example.com")
    assert not origin_allowed(bot=bot, origin="null")


def test_allowed_origins_match_exactly_after_normalization(db):
    bot = BotFactory(allowed_origins=["https://shop.example.com/"])
    assert origin_allowed(bot=bot, origin="https://SHOP.example.com:443")
    assert not origin_allowed(bot=bot, origin="https://shop.example.com.evil.io")
    assert not origin_allowed(bot=bot, origin="http://shop.example.com")


def test_a_signed_identity_verifies_and_a_forged_one_does_not(db):
    bot = BotFactory()
    assert identity_verify(bot=bot, user_id="user-42", signature=identity_hmac(bot=bot, user_id="user-42")) == "user-42"
    other = BotFactory(tenant=bot.tenant)
    for user_id, signature in (
        ("user-42", identity_hmac(bot=other, user_id="user-42")),
        ("user-43", identity_hmac(bot=bot, user_id="user-42")),
        ("user-42", ""),
        ("", "x"),
        (42, "x"),
    ):
        with pytest.raises(AppError) as excinfo:
            identity_verify(bot=bot, user_id=user_id, signature=signature)
        assert excinfo.value.code == "identity_invalid"


def test_unknown_paused_and_suspended_bots_are_not_resolved(db):
    for public_id in ("bot_nope", "", "x" * 500):
        with pytest.raises(AppError) as excinfo:
            widget_bot_resolve(bot_public_id=public_id)
        assert excinfo.value.code == "bot_not_found"
    paused = BotFactory(status=Bot.Status.PAUSED)
    with pytest.raises(AppError):
        widget_bot_resolve(bot_public_id=paused.public_id)
    active = BotFactory()
    tenant_suspend(tenant=active.tenant)
    with pytest.raises(AppError) as excinfo:
        widget_bot_resolve(bot_public_id=active.public_id)
    assert excinfo.value.code == "tenant_suspended"


def test_a_token_for_one_tenants_bot_does_not_open_another_tenants_bot(world):
    bot_a = BotFactory(tenant=world.tenant_a)
    bot_b = BotFactory(tenant=world.tenant_b)
    token = _token(bot_public_id=bot_a.public_id)
    with pytest.raises(AppError) as excinfo:
        widget_socket_authenticate(bot_public_id=bot_b.public_id, token=token, origin=ORIGIN)
    assert excinfo.value.code == "token_invalid"
    bot, claims = widget_socket_authenticate(bot_public_id=bot_a.public_id, token=token, origin=ORIGIN)
    assert bot.pk == bot_a.pk and claims.visitor_id == "visitor-0001"
