"""WebSocket routes. Each app adds its own patterns here."""

from __future__ import annotations

websocket_urlpatterns: list = []
