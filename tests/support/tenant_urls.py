"""Shared by the tenant URL tests: the address forms the egress guard must refuse, a resolver that
makes a public-looking name point at loopback (patched into the guard's resolver only), and a
loopback listener that counts the connections it receives."""

from __future__ import annotations

import socket
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PUBLIC_LOOKING_NAME = "models.example-provider.test"


def refused_urls(port: int) -> dict[str, str]:
    """Every form of a non-public address, by the name tests print for it."""
    return {
        "loopback": f"http://127.0.0.1:{port}/v1",
        "private": f"http://10.1.2.3:{port}/v1",
        "link-local (cloud metadata)": f"http://169.254.169.254:{port}/v1",
        "IPv6-mapped loopback": f"http://[::ffff:127.0.0.1]:{port}/v1",
        "decimal": f"http://2130706433:{port}/v1",
        "hex": f"http://0x7f.0.0.1:{port}/v1",
        "short": f"http://127.1:{port}/v1",
        "localhost": f"http://localhost:{port}/v1",
        "public-looking name resolving to loopback": f"http://{PUBLIC_LOOKING_NAME}:{port}/v1",
    }


def point_name_at(monkeypatch: pytest.MonkeyPatch, name: str, address: str) -> None:
    """Make the egress guard's resolver (and only it) answer `address` for `name`."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list:
        if host == name:
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    fake = types.SimpleNamespace(getaddrinfo=getaddrinfo, gaierror=socket.gaierror, SOCK_STREAM=socket.SOCK_STREAM)
    monkeypatch.setattr("knowledge.egress.socket", fake)


class Listener:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()


@contextmanager
def loopback_listener() -> Iterator[Listener]:
    listener = Listener()
    listener._thread.start()
    try:
        yield listener
    finally:
        listener._stop.set()
        listener._thread.join(2)
        listener.sock.close()
