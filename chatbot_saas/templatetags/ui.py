"""Small filters for the dashboard's templates (a builtin: no `{% load %}` needed).

The components themselves (card, table, form row, badge, progress bar, empty state, confirm
dialog) are django-cotton templates under `templates/cotton/`.
"""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()

# Status words our models use, mapped to the badge's colour (see .badge-* in app.css).
_TONES = {
    "ready": "ok",
    "active": "ok",
    "published": "ok",
    "passed": "ok",
    "succeeded": "ok",
    "ok": "ok",
    "failed": "bad",
    "error": "bad",
    "canceled": "bad",
    "cancelled": "bad",
    "revoked": "bad",
    "suspended": "bad",
    "past_due": "warn",
    "paused": "warn",
    "draft": "warn",
    "queued": "info",
    "parsing": "info",
    "chunking": "info",
    "embedding": "info",
    "running": "info",
    "pending": "info",
}


@register.filter
def startswith(value: Any, prefix: Any) -> bool:
    """`{% if request.path|startswith:url %}`: marks the sidebar's current section."""
    return str(value).startswith(str(prefix)) if prefix else False


@register.filter
def tone(status: Any) -> str:
    """The badge colour for a status word: ok, bad, warn, info or neutral."""
    return _TONES.get(str(status).lower(), "neutral")
