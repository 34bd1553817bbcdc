"""Idempotency keys for visitor messages and API sends.

The widget makes one key per message and sends it in the `message` frame (`idempotency_key`);
API clients send the `Idempotency-Key` header. The key is stored on the visitor's message, unique
per tenant (a partial unique index), so a retry after `server_busy`, a dropped connection or a
client timeout never stores a second question nor calls a model twice: the caller finds the
first turn here and joins its answer (still streaming) or replays it (settled).
"""

from __future__ import annotations

import re

from chatbot_saas.errors import AppError

from .models import Message

# Printable ASCII without spaces: UUIDs, ULIDs and the widget's own keys fit; 80 as the column.
_KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{8,80}$")


def idempotency_key_check(value: object) -> str | None:
    """The key as given, None when absent; AppError `idempotency_key_invalid` when malformed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _KEY_RE.match(value):
        raise AppError(
            "The idempotency key must be 8 to 80 characters: letters, digits, '.', '_', ':' or '-'. "
            "Send a new random key (a UUID, for example) with each new message.",
            code="idempotency_key_invalid",
            status=400,
        )
    return value


def turn_for_idempotency_key(*, key: str, **conversation: object) -> tuple[Message, Message | None] | None:
    """The visitor's message stored with `key` in the current tenant's conversations that match
    `conversation` (e.g. bot=…, visitor_id=… for a widget visitor; pk=… for an API conversation),
    and the assistant message that answers it (None if its turn was refused before one existed).
    Tenant scope required: another tenant's key, or another visitor's, is simply not found."""
    filters = {f"conversation__{name}": value for name, value in conversation.items()}
    question = (
        Message.objects.select_related("conversation")
        .filter(idempotency_key=key, role=Message.Role.USER, **filters)
        .first()
    )
    if question is None:
        return None
    answer = (
        Message.objects.filter(conversation=question.conversation_id, role=Message.Role.ASSISTANT, pk__gt=question.pk)
        .order_by("pk")
        .first()
    )
    return question, answer
