"""Product events (`handoff.requested`, `handoff.closed`, `lead.created`…) in one place.

Here, in the lowest app, so every app can emit. The webhooks app connects a receiver to
`event_emitted` (webhooks.services.deliveries_create_for_event) and delivers the events in its
catalog (webhooks.catalog) to the endpoints that picked them. Emit after the change is committed
(`transaction.on_commit`), so a receiver never sees an event whose data was rolled back.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Sent with sender=<event name> and kwargs tenant_id, payload.
event_emitted = Signal()


def event_emit(*, name: str, tenant_id: int, payload: dict[str, Any]) -> None:
    """Log the event and send it to every receiver. A failing receiver is logged, not raised."""
    logger.info(json.dumps({"event": name, "tenant": tenant_id, **payload}, default=str))
    for receiver, result in event_emitted.send_robust(sender=name, tenant_id=tenant_id, payload=payload):
        if isinstance(result, Exception):
            logger.error("event receiver %r failed for %s: %s", receiver, name, result)
