"""WebSocket routes of the conversations app."""

from __future__ import annotations

websocket_urlpatterns: list = []
