"""Live delivery for human handoff, over the Redis channel layer (so the visitor and the agent may
be on different daphne processes).

Groups: `handoff-conv-<id>` (the visitor's socket and every agent watching that conversation) and
`handoff-inbox-<tenant id>` (every open inbox of the workspace). Messages are
`{"type": "handoff.frame", "frame": {...}}`; receivers forward `frame` as it is.

Everything sent here was stored first: a frame lost in transit is found again by the visitor's
`handoff_sync` and by the inbox's reload. Sends happen after commit.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def conversation_group(conversation_id: int) -> str:
    return f"handoff-conv-{conversation_id}"


def inbox_group(tenant_id: int) -> str:
    return f"handoff-inbox-{tenant_id}"


def _send(group: str, frame: dict[str, Any]) -> None:
    try:
        async_to_sync(get_channel_layer().group_send)(group, {"type": "handoff.frame", "frame": frame})
    except Exception:  # delivery is best effort: the frame's data is stored and re-read on sync
        logger.exception("could not send a %s frame to %s", frame.get("type"), group)


def bus_send_on_commit(group: str, frame: dict[str, Any]) -> None:
    """Send `frame` to `group` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _send(group, frame))


async def bus_send(group: str, frame: dict[str, Any]) -> None:
    """From async code (typing indicators: nothing stored, nothing to wait for)."""
    await get_channel_layer().group_send(group, {"type": "handoff.frame", "frame": frame})


def close_inboxes_of_suspended_tenant(sender: str, tenant_id: int, **kwargs: Any) -> None:
    """tenants.events receiver: a suspended workspace's open inboxes close at once."""
    if sender != "tenant.suspended":
        return
    try:
        async_to_sync(get_channel_layer().group_send)(inbox_group(tenant_id), {"type": "inbox.suspended"})
    except Exception:
        logger.exception("could not close the inboxes of suspended tenant %s", tenant_id)
