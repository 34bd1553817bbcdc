"""Make daphne close an oversized WebSocket message with 1009, as docs/protocol.md promises.

daphne is started with `--websocket-max-message-size` (= WS_MAX_FRAME_BYTES, see Procfile), so
autobahn refuses an oversized message before it is buffered for the app. But autobahn's servers
default to `failByDrop`: they cut the TCP connection without a close frame, and the client only
sees 1006. With failByDrop off, autobahn sends the 1009 close frame first. (An ASGI app cannot
send 1009 itself: autobahn only lets applications use 1000 and 3000-4999.)
"""

from __future__ import annotations


def install() -> None:
    try:
        from daphne.ws_protocol import WebSocketFactory
    except ImportError:  # another ASGI server: it reports 1009 on its own
        return
    if getattr(WebSocketFactory, "_sends_close_frames", False):
        return
    original = WebSocketFactory.resetProtocolOptions

    def reset_protocol_options(self) -> None:
        original(self)
        self.failByDrop = False

    WebSocketFactory.resetProtocolOptions = reset_protocol_options
    WebSocketFactory._sends_close_frames = True
