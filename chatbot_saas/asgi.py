"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbot_saas.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from .devrecord import warn_if_no_services  # noqa: E402
from .routing import websocket_urlpatterns  # noqa: E402
from .tracing import setup_from_settings  # noqa: E402

warn_if_no_services()  # daphne started by hand with no DATABASE_URL/REDIS_URL and no `make run` to find

setup_from_settings("web")  # OpenTelemetry, when OTEL_EXPORTER_OTLP_ENDPOINT is set

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

if settings.KNOWLEDGE_PRELOAD_EMBEDDER:
    # Load the query embedder while daphne starts listening, not in the first visitor's turn
    # (20-60 s on a small machine). The test suite's daphnes turn it off (tests/support/servers.py).
    from knowledge.embeddings import preload_default_embedder_in_background

    preload_default_embedder_in_background()

if settings.SENTRY_DSN:  # pragma: no cover - needs a DSN
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware

    application = SentryAsgiMiddleware(application)
