"""The command lines of the ASGI servers the app is measured and tested under (benchmarks/streaming.py
`--server`, tests/support/servers.py). daphne is the server (Procfile, Dockerfile, compose); uvicorn
was measured against it (README, "Server") and is not much faster, so it is not a setting.

Both get the WebSocket message cap WS_MAX_FRAME_BYTES, so an oversized visitor frame is closed
with 1009 by either server:
- `daphne` (the default): `--websocket-max-message-size` (conversations/daphne_compat.py makes
  autobahn send the 1009 close frame instead of dropping the connection);
- `uvicorn`: its websockets (sans-I/O) implementation with `--ws-max-size`, no access log.
"""

from __future__ import annotations

import sys
from pathlib import Path

SERVERS = ("daphne", "uvicorn")
APPLICATION = "chatbot_saas.asgi:application"


def server_command(server: str, *, host: str, port: int, max_frame_bytes: int) -> list[str]:
    if server not in SERVERS:
        raise ValueError(f"the server must be one of {', '.join(SERVERS)}, got {server!r}")
    bin_dir = Path(sys.executable).parent
    if server == "uvicorn":
        return [
            str(bin_dir / "uvicorn"), "--host", host, "--port", str(port), "--ws", "websockets-sansio",
            "--ws-max-size", str(max_frame_bytes), "--lifespan", "off", "--no-access-log", APPLICATION,
        ]  # fmt: skip
    return [
        str(bin_dir / "daphne"), "-b", host, "-p", str(port), "--websocket-max-message-size", str(max_frame_bytes),
        APPLICATION,
    ]  # fmt: skip
