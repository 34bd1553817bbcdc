"""WebSocket routes of the conversations app."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.urls import path

from . import daphne_compat
from .consumers import WidgetConsumer
from .inbox_consumer import InboxConsumer
from .playground import PlaygroundConsumer

daphne_compat.install()

websocket_urlpatterns: list = [
    path("ws/widget/<str:bot_public_id>/", WidgetConsumer.as_asgi()),
    # Members only: the dashboard's session cookie authenticates (visitors' sockets need none of it).
    path("ws/playground/<slug:tenant_slug>/", AuthMiddlewareStack(PlaygroundConsumer.as_asgi())),
    path("ws/inbox/<slug:tenant_slug>/", AuthMiddlewareStack(InboxConsumer.as_asgi())),
]
