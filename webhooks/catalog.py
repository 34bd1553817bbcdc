"""The events a tenant can subscribe an endpoint to, and what each one carries in `data`."""

from __future__ import annotations

# name -> what it means (shown on the dashboard and in docs/webhooks.md)
EVENTS: dict[str, str] = {
    "conversation.started": "A visitor's first message in a conversation was answered.",
    "message.completed": "The bot finished an answer (or stopped with an error).",
    "feedback.created": "A visitor rated an answer thumbs up or down.",
    "document.ready": "A knowledge document was ingested and is searchable.",
    "document.failed": "A knowledge document could not be ingested.",
    "quota.warning": "The workspace used most of a plan limit this month.",
    "handoff.requested": "A visitor asked for a human.",
    "handoff.closed": "A human handoff was closed.",
    "lead.created": "A visitor left their contact details.",
}

# Sent by "Send test event" only; never subscribed to.
TEST_EVENT = "webhook.test"


def event_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in EVENTS]
