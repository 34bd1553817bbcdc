"""WebSocket routes of the conversations app."""

from __future__ import annotations

from django.urls import path

from . import daphne_compat
from .consumers import WidgetConsumer

daphne_compat.install()

websocket_urlpatterns: list = [
    path("ws/widget/<str:bot_public_id>/", WidgetConsumer.as_asgi()),
]
