"""The command lines of the ASGI servers the app runs under, and `python -m chatbot_saas.asgi_server`,
the web process (Procfile, Dockerfile, compose; benchmarks/streaming.py `--server`/`--workers`,
tests/support/servers.py).

daphne is the server. uvicorn was measured against it (docs/benchmarks.md, streaming) and is a setting,
WEB_SERVER=uvicorn. Both get the WebSocket message cap WS_MAX_FRAME_BYTES, so an oversized visitor
frame is closed with 1009 by either server:
- `daphne` (the default): `--websocket-max-message-size` (conversations/daphne_compat.py makes
  autobahn send the 1009 close frame instead of dropping the connection);
- `uvicorn`: its websockets (sans-I/O) implementation with `--ws-max-size`, no access log.

WEB_WORKERS=N (default 1) runs N server processes on one port: each gets its own socket bound with
SO_REUSEPORT, passed as a file descriptor (`--fd`), and the kernel spreads new connections over the
listening ones. A worker loads the application before it listens, so no connection waits in the
backlog of a worker that is still starting. One process is one event loop, so one core: N processes use N cores for
the socket, provider-stream and pipeline work. Nothing is shared in memory between them (resume,
stop, rate limits and breakers live in Redis). With 1 worker the server is exec'd directly.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

SERVERS = ("daphne", "uvicorn")
APPLICATION = "chatbot_saas.asgi:application"


def server_command(
    server: str,
    *,
    host: str | None = None,
    port: int | None = None,
    max_frame_bytes: int,
    fd: int | None = None,
    application: str = APPLICATION,
) -> list[str]:
    """One server process listening on host:port, or on the inherited socket `fd`."""
    if server not in SERVERS:
        raise ValueError(f"the server must be one of {', '.join(SERVERS)}, got {server!r}")
    bin_dir = Path(sys.executable).parent
    if server == "uvicorn":
        bind = ["--fd", str(fd)] if fd is not None else ["--host", str(host), "--port", str(port)]
        return [
            str(bin_dir / "uvicorn"),
            *bind,
            "--ws",
            "websockets-sansio",
            "--ws-max-size",
            str(max_frame_bytes),
            "--lifespan",
            "off",
            "--no-access-log",
            application,
        ]
    bind = ["--fd", str(fd)] if fd is not None else ["-b", str(host), "-p", str(port)]
    return [
        str(bin_dir / "daphne"),
        *bind,
        "--websocket-max-message-size",
        str(max_frame_bytes),
        application,
    ]


def launcher_command(
    server: str, *, host: str, port: int, max_frame_bytes: int, workers: int, application: str = APPLICATION
) -> list[str]:
    """`python -m chatbot_saas.asgi_server` with these settings (what the Procfile runs)."""
    return [
        sys.executable,
        "-m",
        "chatbot_saas.asgi_server",
        "--server",
        server,
        "--workers",
        str(workers),
        "--host",
        host,
        "--port",
        str(port),
        "--max-frame-bytes",
        str(max_frame_bytes),
        application,
    ]


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _worker(*, server: str, fd: int, max_frame_bytes: int, application: str) -> int:
    """One of N workers: import the application (the slow part), listen on the inherited socket,
    then run the server's own command line in this process on that socket."""
    import importlib

    importlib.import_module(application.partition(":")[0])
    listener = socket.socket(fileno=fd)
    listener.listen(2048)
    listener.detach()  # the server adopts the descriptor
    argv = server_command(server, fd=fd, max_frame_bytes=max_frame_bytes, application=application)[1:]
    if server == "uvicorn":
        from uvicorn.main import main as uvicorn_main

        return uvicorn_main(argv) or 0
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(argv)
    return 0


def serve(*, server: str, host: str, port: int, max_frame_bytes: int, workers: int, application: str) -> int:
    """Run the web process: the server itself (1 worker), or N servers on one port, until a signal
    or until one of them exits (then the others are stopped too, and the exit code is passed on,
    so the process manager restarts the whole set)."""
    if workers <= 1:
        command = server_command(server, host=host, port=port, max_frame_bytes=max_frame_bytes, application=application)
        os.execv(command[0], command)  # noqa: S606 - our own fixed command line
    sockets = [_bound_socket(host, port) for _ in range(workers)]
    children = []
    for sock in sockets:
        command = [
            sys.executable,
            "-m",
            "chatbot_saas.asgi_server",
            "--worker-fd",
            str(sock.fileno()),
            "--server",
            server,
            "--max-frame-bytes",
            str(max_frame_bytes),
            application,
        ]
        children.append(subprocess.Popen(command, pass_fds=(sock.fileno(),)))  # noqa: S603
        sock.close()  # the child has its copy

    def stop(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    try:
        pid, status = os.wait()  # the first child to exit, for whatever reason
        code = os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        pass
    stop(signal.SIGTERM, None)
    for child in children:
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbot_saas.asgi_server", description=__doc__.split("\n")[0])
    parser.add_argument("--server", default=os.environ.get("WEB_SERVER", "daphne"), choices=SERVERS)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "1")))
    parser.add_argument("--host", default=os.environ.get("WEB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("WEB_PORT", "8000")))
    parser.add_argument("--max-frame-bytes", type=int, default=int(os.environ.get("WS_MAX_FRAME_BYTES", "16384")))
    parser.add_argument("--worker-fd", type=int, default=None, help=argparse.SUPPRESS)  # set by serve()
    parser.add_argument("application", nargs="?", default=APPLICATION)
    args = parser.parse_args(argv)
    if args.worker_fd is not None:
        return _worker(
            server=args.server, fd=args.worker_fd, max_frame_bytes=args.max_frame_bytes, application=args.application
        )
    return serve(
        server=args.server,
        host=args.host,
        port=args.port,
        max_frame_bytes=args.max_frame_bytes,
        workers=args.workers,
        application=args.application,
    )


if __name__ == "__main__":
    sys.exit(main())
