"""Who may talk to a bot: origin checks, signed visitor identities, and the bot look-up by public id.

These are the authentication boundary of the visitor channel, so `widget_bot_resolve` is the one
place that looks a bot up across tenants (`.unscoped()`), before any tenant is in context.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from django.conf import settings

from bots.models import Bot
from chatbot_saas.errors import AppError, NotFound, TenantSuspended

from .tokens import SessionClaims, session_token_verify

DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginNotAllowed(AppError):
    code = "origin_not_allowed"
    status = 403


class IdentityInvalid(AppError):
    code = "identity_invalid"
    status = 403


def origin_normalize(origin: str | None) -> str:
    """`scheme://host[:port]`, lower-case, default port dropped; '' when it is not an http(s) origin."""
    if not origin or len(origin) > 300:
        return ""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or parts.username or parts.password:
        return ""
    if port and port != DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def origin_allowed(*, bot: Bot, origin: str | None) -> bool:
    """True when `origin` is in the bot's list. An empty list allows nothing unless the bot opted in
    to any origin; a missing or non-http origin is never allowed (the widget always sends one)."""
    normalized = origin_normalize(origin)
    if not normalized:
        return False
    if bot.allow_any_origin:
        return True
    return normalized in {origin_normalize(o) for o in bot.allowed_origins or []}


def origin_check(*, bot: Bot, origin: str | None) -> str:
    if not origin_allowed(bot=bot, origin=origin):
        raise OriginNotAllowed("This website is not allowed to use this chatbot. Add it to the bot's allowed origins.")
    return origin_normalize(origin)


def identity_hmac(*, bot: Bot, user_id: str) -> str:
    """What the tenant's backend computes: hex HMAC-SHA256 of the user id with the bot's secret."""
    return hmac.new(bot.identity_secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identity_verify(*, bot: Bot, user_id: str, signature: str) -> str:
    """Return the verified external user id, or raise IdentityInvalid. Constant-time compare."""
    if not isinstance(user_id, str) or not isinstance(signature, str) or not user_id or len(user_id) > 200:
        raise IdentityInvalid("The visitor identity is missing its id or signature.")
    if not hmac.compare_digest(identity_hmac(bot=bot, user_id=user_id), signature.strip().lower()):
        raise IdentityInvalid("The visitor identity signature does not match. Check the bot's identity secret.")
    return user_id


def widget_bot_resolve(*, bot_public_id: str) -> Bot:
    """The active bot with this public id, with its tenant; raises bot_not_found or tenant_suspended.

    A paused bot looks the same as a missing one to visitors.
    """
    bot = None
    if isinstance(bot_public_id, str) and 0 < len(bot_public_id) <= 40:
        bot = Bot.objects.unscoped().select_related("tenant").filter(public_id=bot_public_id).first()
    if bot is None or bot.status != Bot.Status.ACTIVE:
        raise NotFound("This chatbot does not exist or is not available.", code="bot_not_found")
    if not bot.tenant.is_active:
        raise TenantSuspended("This chatbot is not available right now.")
    return bot


def widget_socket_authenticate(
    *, bot_public_id: str, token: str | None, origin: str | None
) -> tuple[Bot, SessionClaims]:
    """The WebSocket handshake: the bot is available, the origin is allowed, and the session token
    was issued for this bot, this origin and a visitor. Returns the bot (with its tenant) and the claims."""
    bot = widget_bot_resolve(bot_public_id=bot_public_id)
    if origin_allowed(bot=bot, origin=origin):
        claims = session_token_verify(token=token or "", bot_public_id=bot.public_id, origin=origin_normalize(origin))
        return bot, claims
    # A preview session was issued only to the dashboard's own origin (widget_session_open checked
    # it with the designer's preview token) and its token is bound to that origin, so it needs no
    # place in the bot's allowed origins. Any other token from here is refused as before.
    preview: SessionClaims | None
    try:
        preview = session_token_verify(token=token or "", bot_public_id=bot.public_id, origin=origin_normalize(origin))
    except AppError:
        preview = None
    if preview is None or preview.channel != "playground":
        raise OriginNotAllowed("This website is not allowed to use this chatbot. Add it to the bot's allowed origins.")
    return bot, preview


def client_ip(*, remote_addr: str | None, forwarded_for: str | None) -> str:
    """The client's IP for rate limits: X-Forwarded-For's first entry only behind a trusted proxy."""
    if settings.RATE_LIMIT_TRUST_FORWARDED_FOR and forwarded_for:
        first = forwarded_for.split(",")[0].strip()
        if first and len(first) <= 64:
            return first
    return remote_addr or "unknown"
