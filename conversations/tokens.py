"""Signed, short-lived widget session tokens.

A token is what the widget shows the WebSocket handshake. It is bound to the bot, the visitor id
and the page origin it was issued for, so a token copied to another site or another bot is
useless. It is signed with SECRET_KEY (django.core.signing, HMAC-SHA256) and carries its own
issue time; nothing is stored server-side.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from chatbot_saas.errors import AppError

SALT = "conversations.widget-session.v1"


class TokenError(AppError):
    code = "token_invalid"
    status = 403


@dataclass(frozen=True)
class SessionClaims:
    bot_public_id: str
    visitor_id: str
    origin: str
    external_user_id: str = ""
    # "widget" for visitors; "playground" for the widget designer's preview (bots.preview), whose
    # conversations stay out of visitor analytics and whose origin is the dashboard's own.
    channel: str = "widget"


def session_token_issue(*, claims: SessionClaims) -> str:
    payload = {"b": claims.bot_public_id, "v": claims.visitor_id, "o": claims.origin, "u": claims.external_user_id}
    if claims.channel != "widget":
        payload["c"] = claims.channel
    return signing.dumps(payload, salt=SALT, compress=True)


def session_token_verify(*, token: str, bot_public_id: str, origin: str) -> SessionClaims:
    """Return the claims of a valid token for this bot and origin, or raise TokenError.

    Codes: `token_expired` (valid signature, too old) and `token_invalid` (missing, forged,
    or bound to another bot or origin).
    """
    if not token or len(token) > 2048:
        raise TokenError("A session token is required. Reload the page to get a new one.")
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.WIDGET_SESSION_TTL_SECONDS)
    except signing.SignatureExpired:
        raise TokenError("The chat session expired. Reload the page to continue.", code="token_expired") from None
    except signing.BadSignature:
        raise TokenError("The session token is not valid. Reload the page to get a new one.") from None
    if not isinstance(payload, dict) or payload.get("b") != bot_public_id or payload.get("o") != origin:
        raise TokenError("The session token was issued for another bot or page. Reload the page.")
    return SessionClaims(
        bot_public_id=payload["b"],
        visitor_id=str(payload.get("v", "")),
        origin=payload["o"],
        external_user_id=str(payload.get("u", "")),
        channel=str(payload.get("c", "widget")),
    )
