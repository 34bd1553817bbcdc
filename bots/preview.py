"""Preview tokens: the widget designer's live preview talks to the real session endpoint.

The dashboard's own origin is not in a bot's allowed origins, so the designer page carries a
short-lived signed token (django.core.signing, HMAC with SECRET_KEY) naming the bot and the member
who opened the page. The session endpoint accepts it in place of an allowed origin only when the
request comes from the app's own origin, and what is said through it is playground traffic
(Conversation.Channel.PLAYGROUND), kept out of visitor analytics. Nothing is stored server-side.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing

SALT = "bots.widget-preview.v1"
# Long enough to design and try a few questions; the page gets a new one on every load.
PREVIEW_TTL_SECONDS = 15 * 60


class PreviewTokenInvalid(Exception):
    """The token is forged, expired, or names another bot."""


@dataclass(frozen=True)
class PreviewClaims:
    bot_public_id: str
    user_id: int


def preview_token_issue(*, bot_public_id: str, user_id: int) -> str:
    return signing.dumps({"b": bot_public_id, "u": user_id}, salt=SALT)


def preview_token_verify(*, token: object, bot_public_id: str) -> PreviewClaims:
    """The claims of a valid, unexpired token for this bot, or PreviewTokenInvalid."""
    if not isinstance(token, str) or not token or len(token) > 500:
        raise PreviewTokenInvalid("missing")
    try:
        payload = signing.loads(token, salt=SALT, max_age=PREVIEW_TTL_SECONDS)
    except signing.SignatureExpired:
        raise PreviewTokenInvalid("expired") from None
    except signing.BadSignature:
        raise PreviewTokenInvalid("forged") from None
    if not isinstance(payload, dict) or payload.get("b") != bot_public_id or not isinstance(payload.get("u"), int):
        raise PreviewTokenInvalid("another bot")
    return PreviewClaims(bot_public_id=payload["b"], user_id=payload["u"])
