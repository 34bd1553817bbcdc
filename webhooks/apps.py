from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tenants.events import event_emitted

        from .services import deliveries_create_for_event

        # Every product event reaches tenants.events.event_emit; this turns the ones a tenant
        # subscribed to into deliveries. The receiver is robust: event_emit logs its errors.
        event_emitted.connect(deliveries_create_for_event, dispatch_uid="webhooks-deliveries")
