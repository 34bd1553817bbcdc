"""The web process: `python -m chatbot_saas.asgi_server` (Procfile `web`, Dockerfile, compose).

Starts the ASGI server ASGI_SERVER names on WEB_HOST:WEB_PORT, with the WebSocket message cap
WS_MAX_FRAME_BYTES, so an oversized visitor frame is closed with 1009 by either server:
- `daphne` (the default): `--websocket-max-message-size` (conversations/daphne_compat.py makes
  autobahn send the 1009 close frame instead of dropping the connection);
- `uvicorn`: its websockets (sans-I/O) implementation with `--ws-max-size`. No access log:
  daphne's per-request log line is the same cost, but uvicorn makes it optional.
See README, "Server", for when to pick which.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SERVERS = ("daphne", "uvicorn")
APPLICATION = "chatbot_saas.asgi:application"


def server_command(server: str, *, host: str, port: int, max_frame_bytes: int) -> list[str]:
    if server not in SERVERS:
        raise SystemExit(f"ASGI_SERVER must be one of {', '.join(SERVERS)}, got {server!r}")
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


def main() -> None:
    from .env import read_dotenv

    read_dotenv(str(BASE_DIR / ".env"))
    cmd = server_command(
        os.environ.get("ASGI_SERVER") or "daphne",
        host=os.environ.get("WEB_HOST") or "127.0.0.1",
        port=int(os.environ.get("WEB_PORT") or 8000),
        max_frame_bytes=int(os.environ.get("WS_MAX_FRAME_BYTES") or 16 * 1024),
    )
    os.execv(cmd[0], cmd)  # noqa: S606 - replace this process: signals from honcho/docker reach the server


if __name__ == "__main__":
    main()
