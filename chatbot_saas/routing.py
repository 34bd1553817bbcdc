"""WebSocket routes: each app keeps its own list in <app>/routing.py."""

from __future__ import annotations

from conversations.routing import websocket_urlpatterns as conversation_routes

websocket_urlpatterns: list = [*conversation_routes]
