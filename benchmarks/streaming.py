"""Streaming: N concurrent visitor WebSocket conversations against a fake OpenAI provider at 30 tokens/s.

For each N (100, 500, 1,000; `--quick`: 20, 100) it starts one daphne on the real app and one on a bare
Channels consumer that streams the same frames (benchmarks/bare_asgi.py), opens N sockets to each,
sends one question per socket once all are open (questions spread over 2 s), and reads every frame
until `end`.

Reported per server and N: frames/s; time to first token minus the provider's configured TTFT
(p50/p99, "overhead"); dropped and out-of-order frames (a missing or repeated `seq`, or an answer
whose text does not match its `end`); inter-frame gap p99; server CPU seconds per 1,000 tokens and
its ratio to the bare consumer's. Everything runs on 127.0.0.1; each phase has a time limit, and a
stream that misses it counts as dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .common import percentile

TITLE = "Visitor WebSocket streaming at N concurrent conversations (fake provider, 30 tokens/s)"
BASE_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ORIGIN = "http://127.0.0.1:8001"
TOKENS = 60
TPS = 30.0
TTFT = 0.2
ARRIVAL_SPREAD = 2.0
# Sockets open over N x 10 ms (10 s for 1,000) before any question: visitors arrive over time.
CONNECT_SPREAD_PER_SOCKET = 0.01
PHASE_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"process on port {port} did not start") from None
            time.sleep(0.1)


@contextmanager
def _process(args: list[str], env: dict[str, str], port: int, log_name: str, cwd: Path = BASE_DIR) -> Any:
    log_dir = BASE_DIR / "var" / "bench-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / log_name).open("wb") as log:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_port(port, process)
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def answer_text() -> str:
    return "".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26 % 26)} " for i in range(TOKENS))


class _Discard(list):
    def append(self, item: Any) -> None:  # do not keep N request bodies in memory
        return None


def _fake_openai() -> Any:
    sys.path.insert(0, str(BASE_DIR))
    from tests.fakes.base import Behaviour
    from tests.fakes.openai_server import FakeOpenAI

    fake = FakeOpenAI(api_key="bench-key")
    fake._server.server_close()  # only its wire format is used below
    fake.default = Behaviour(text=answer_text(), ttft=TTFT, tokens_per_second=TPS)
    fake.requests = _Discard()
    return fake


def serve_fake_llm(port: int, kind: str) -> None:
    """Run the fake OpenAI server (tests/fakes wire format) in this process until killed.

    `threaded`: the tests' http.server, one thread per stream. `asyncio`: the same bytes (the same
    `stream_events`, chunked encoding and headers) from one event loop, so that at N = 1,000 the fake
    provider's thread switching does not take the 2 cores from the server being measured.
    """
    fake = _fake_openai()
    if kind == "threaded":
        import threading

        from tests.fakes import base

        base._Server.request_queue_size = 2048  # N simultaneous connects, not socketserver's 5
        fake._server = base._Server(("127.0.0.1", port), base._Handler)
        fake._server.fake = fake
        threading.Thread(target=fake._server.serve_forever, daemon=True).start()
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        return
    asyncio.run(_serve_fake_asyncio(fake, port))


async def _serve_fake_asyncio(fake: Any, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name:
                    headers[name.strip().lower()] = value.strip()
            body = json.loads(await reader.readexactly(int(headers.get("content-length") or 0)) or b"{}")
            behaviour = fake.next_behaviour()
            if not fake.authorised(headers):
                status, extra, payload = fake.error_response("auth", behaviour)
                data = json.dumps(payload).encode()
                lines = [f"HTTP/1.1 {status} Error", "content-type: application/json", f"content-length: {len(data)}"]
                lines += ["connection: close"] + [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
                b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            )
            gap = 1 / behaviour.tokens_per_second if behaviour.tokens_per_second else 0
            sent = 0
            for event, is_token in fake.stream_events(body, behaviour):
                if is_token:
                    await asyncio.sleep(behaviour.ttft if sent == 0 else gap)
                    sent += 1
                data = event.encode()
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


@dataclass
class StreamResult:
    sent_at: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    text: str = ""
    end_content: str | None = None
    error: str | None = None


def _bench_data(n: int) -> tuple[str, list[str]]:
    """A tenant on an unlimited plan with one bot on the fake OpenAI model; N session tokens."""
    from django.core.management import call_command

    from billing.models import Plan, Subscription
    from bots.models import Bot, PromptVersion
    from conversations.tokens import SessionClaims, session_token_issue
    from tenants.context import tenant_context
    from tenants.models import Tenant

    call_command("migrate", "--noinput", verbosity=0)
    Tenant.objects.filter(slug="bench-streaming").delete()
    tenant = Tenant.objects.create(name="Bench streaming", slug="bench-streaming")
    plan, _ = Plan.objects.get_or_create(
        slug="bench-unlimited", defaults={"name": "Bench", "max_messages_per_month": None, "is_public": False}
    )
    with tenant_context(tenant):
        Subscription.objects.create(tenant=tenant, plan=plan, status=Subscription.Status.ACTIVE)
        bot = Bot.objects.create(
            tenant=tenant,
            name="bench",
            answer_policy=Bot.AnswerPolicy.GENERAL,
            max_answer_tokens=512,
            model_chain=[{"provider": "openai", "model": "gpt-4o-mini", "params": {}}],
            allowed_origins=[ORIGIN],
        )
        PromptVersion.objects.create(tenant=tenant, bot=bot, number=1, text="Answer briefly.", is_published=True)
    tokens = [
        session_token_issue(claims=SessionClaims(bot.public_id, f"bench-visitor-{i:05d}", ORIGIN)) for i in range(n)
    ]
    return bot.public_id, tokens


async def _converse(url: str, connect_at: float, send_at: float, result: StreamResult, deadline: float) -> None:
    """One visitor: connect at `connect_at`, ask at `send_at`, read until `end` (time.monotonic()
    clock, which every process on the machine shares)."""
    from websockets.asyncio.client import connect

    try:
        await asyncio.sleep(max(0.0, connect_at - time.monotonic()))
        async with connect(url, origin=ORIGIN, open_timeout=60, ping_interval=None, max_queue=None) as ws:
            await asyncio.sleep(max(0.0, send_at - time.monotonic()))
            result.sent_at = time.monotonic()
            await ws.send(json.dumps({"type": "message", "text": "Tell me about the product, please."}))
            while True:
                raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
                now = time.monotonic()
                frame = json.loads(raw)
                kind = frame["type"]
                if kind == "error":
                    result.error = frame.get("code")
                    return
                if kind == "start":
                    continue
                result.arrivals.append(now)
                result.seqs.append(frame["seq"])
                if kind == "delta":
                    result.text += frame["text"]
                elif kind == "reset":
                    result.text = ""
                elif kind == "end":
                    result.end_content = frame["content"]
                    if frame.get("status") != "complete":  # e.g. cut at ANSWER_MAX_SECONDS: not a lost frame
                        result.error = f"end_{frame.get('status')}"
                    return
    except (TimeoutError, OSError, Exception) as exc:
        result.error = result.error or type(exc).__name__


def _client_slice(plan: list[tuple[str, float, float]], start_at: float, deadline: float) -> tuple[list, float]:
    """Run some of the visitors (url, connect time, send time) in this process; returns their
    results and this process's CPU seconds from `start_at` (the clock start) to the end."""

    async def main() -> tuple[list[StreamResult], float]:
        results = [StreamResult() for _ in plan]
        tasks = [
            asyncio.create_task(_converse(url, connect_at, send_at, result, deadline))
            for (url, connect_at, send_at), result in zip(plan, results, strict=True)
        ]
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        cpu_before = time.process_time()
        await asyncio.gather(*tasks)
        return results, time.process_time() - cpu_before

    return asyncio.run(main())


def _service_counts() -> dict[str, int]:
    """Load-independent work counters of the shared services: Redis commands (INFO commandstats)
    and Postgres transactions (pg_stat_database; in autocommit one per statement, plus one per
    explicit transaction's COMMIT) of the benchmark database."""
    import redis
    from django.conf import settings
    from django.db import connection

    stats = redis.Redis.from_url(settings.REDIS_URL).info("commandstats")
    by_command = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        xacts = int(cursor.fetchone()[0])
    return {
        "redis_cmds": sum(by_command.values()),
        "db_xacts": xacts,
        **{f"redis:{k}": v for k, v in by_command.items()},
    }


def _run_clients(urls: list[str], pid: int, client_procs: int = 1) -> dict[str, Any]:
    """Open every socket (over N x 10 ms), start the clock 5 s later, send the N questions over
    ARRIVAL_SPREAD, read every answer. The visitors run in `client_procs` processes (round robin),
    so that at N = 1,000 one Python process parsing ~25k frames/s is not what is measured."""
    n = len(urls)
    connect_spread = n * CONNECT_SPREAD_PER_SOCKET
    # The visitors always run in client processes, so that they open their sockets on schedule
    # while this process sleeps until the clock starts (run here, a single slice would only begin
    # at start_at and open all N sockets at once). 2 s covers spawning them.
    warmup = 2.0
    opened = time.monotonic() + warmup
    start_at = opened + connect_spread + 5.0  # every socket is open before the clock starts
    deadline = start_at + PHASE_TIMEOUT
    plan = [(url, opened + connect_spread * i / n, start_at + ARRIVAL_SPREAD * i / n) for i, url in enumerate(urls)]
    slices = [plan[k::client_procs] for k in range(client_procs)]
    with ProcessPoolExecutor(client_procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_client_slice, part, start_at, deadline) for part in slices]
        time.sleep(max(0.0, start_at - 0.2 - time.monotonic()))
        cpu_before = _tree_cpu(pid)
        counts_before = _service_counts()
        time.sleep(max(0.0, start_at - time.monotonic()))
        done = [future.result() for future in futures]
        cpu = _tree_cpu(pid) - cpu_before
        elapsed = time.monotonic() - start_at
    results = [r for part, _ in done for r in part]
    client_cpu = sum(cpu_s for _, cpu_s in done)
    time.sleep(2.0)  # Postgres backends publish their statistics within ~1 s of going idle
    counts_after = _service_counts()
    summary = _summarize(results, elapsed, cpu)
    summary["client_cpu_s"] = client_cpu
    turns = sum(1 for r in results if r.sent_at)
    for name in ("redis_cmds", "db_xacts"):
        # Minus the reads of the counters themselves (two statements each).
        own = 2 if name == "db_xacts" else 0
        summary[f"{name}_per_turn"] = (counts_after[name] - counts_before[name] - own) / turns if turns else math.nan
    commands = {
        k.removeprefix("redis:"): round((v - counts_before.get(k, 0)) / turns, 2)
        for k, v in counts_after.items()
        if k.startswith("redis:") and turns and v != counts_before.get(k, 0)
    }
    print(f"redis commands per turn: {json.dumps(commands, sort_keys=True)}", flush=True)
    return summary


def _summarize(results: list[StreamResult], elapsed: float, cpu: float) -> dict[str, Any]:
    expected = answer_text()
    frames = sum(len(r.seqs) for r in results)
    answered = sum(1 for r in results if r.seqs)
    dropped = out_of_order = 0
    ttft: list[float] = []
    gaps: list[float] = []
    completed = 0
    for r in results:
        if r.end_content is None:
            dropped += 1
            continue
        if r.seqs != list(range(1, len(r.seqs) + 1)):
            out_of_order += sum(1 for a, b in zip(r.seqs, r.seqs[1:], strict=False) if b != a + 1)
        if r.text != expected or r.end_content.strip() != expected.strip():
            dropped += 1
            continue
        completed += 1
        ttft.append((r.arrivals[0] - r.sent_at - TTFT) * 1000)
        gaps += [(b - a) * 1000 for a, b in zip(r.arrivals, r.arrivals[1:], strict=False)]
    tokens = completed * TOKENS
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    return {
        "completed": completed,
        "frames_per_s": frames / elapsed if elapsed else 0.0,
        "frames_per_answer": frames / answered if answered else math.nan,
        "ttft_overhead_p50_ms": percentile(ttft, 50),
        "ttft_overhead_p99_ms": percentile(ttft, 99),
        "dropped_or_bad_streams": dropped,
        "out_of_order_frames": out_of_order,
        "gap_p99_ms": percentile(gaps, 99),
        "cpu_s_per_1k_tokens": cpu / (tokens / 1000) if tokens else float("nan"),
        "errors": ",".join(f"{k}:{v}" for k, v in sorted(errors.items())) or "-",
    }


def _secret_key() -> str:
    from django.conf import settings

    return settings.SECRET_KEY


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            # Both servers run as in production: DEBUG off (no per-query log, no debug cursors).
            "DJANGO_DEBUG": "false",
            "SECRET_KEY": _secret_key(),  # the session tokens are signed here, by this process
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "METRICS_TOKEN": "bench",  # production settings require one
            "KNOWLEDGE_PRELOAD_EMBEDDER": "false",
            "RATE_LIMIT_VISITOR": "1000/60",
            "RATE_LIMIT_IP": "1000000/60",
            "RATE_LIMIT_BOT": "1000000/60",
            "RATE_LIMIT_TENANT": "1000000/60",
            "BENCH_TOKENS": str(TOKENS),
            "BENCH_TPS": str(TPS),
            "BENCH_TTFT": str(TTFT),
            "LLM_FIRST_TOKEN_TIMEOUT_MS": "120000",
            "LLM_IDLE_TIMEOUT_MS": "120000",
            "LLM_CONNECT_TIMEOUT_MS": "60000",
            # The client gives every stream PHASE_TIMEOUT; the app must not cut answers sooner.
            "ANSWER_MAX_SECONDS": str(int(PHASE_TIMEOUT)),
        }
    )
    env.update(extra)
    return env


def _server_cmd(server: str, app: str, port: int, workers: int = 1) -> list[str]:
    """The ASGI server command as the Procfile runs it (chatbot_saas/asgi_server.py), frame cap included:
    the server itself for one worker, `python -m chatbot_saas.asgi_server --workers N` for more."""
    from chatbot_saas.asgi_server import launcher_command, server_command

    if workers > 1:
        return launcher_command(
            server, host="127.0.0.1", port=port, max_frame_bytes=16384, workers=workers, application=app
        )
    cmd = server_command(server, host="127.0.0.1", port=port, max_frame_bytes=16384, application=app)
    if os.environ.get("BENCH_PROFILE") and app.startswith("chatbot_saas"):
        profile = str(BASE_DIR / "var" / "bench-logs" / "app.prof")
        return [sys.executable, "-m", "cProfile", "-o", profile, *cmd]
    return cmd


def _tree_cpu(pid: int) -> float:
    """User + system CPU seconds of the server process and its worker processes, if any."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            total += sum(process.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _cpu(pid: int) -> float:
    try:
        return sum(psutil.Process(pid).cpu_times()[:2])
    except psutil.Error:
        return 0.0


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if getattr(args, "sizes", None):
        sizes = [int(n) for n in args.sizes.split(",")]
    else:
        sizes = [20, 100] if args.quick else [100, 500, 1000]
    server = getattr(args, "server", "daphne")
    workers = getattr(args, "workers", 1) or 1
    client_procs = getattr(args, "client_procs", 1) or 1
    label = server if workers == 1 else f"{server} x{workers}"
    fake_kind = getattr(args, "fake_llm", "asyncio")
    rows: list[dict[str, Any]] = []
    llm_port = _free_port()
    fake_cmd = [sys.executable, "-m", "benchmarks.streaming", "--serve-fake-llm", str(llm_port), fake_kind]
    with _process(fake_cmd, _env(), llm_port, "fake-llm.log") as fake:
        llm_env = {"OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1"}
        for n in sizes:
            public_id, tokens = _bench_data(n)
            bare_port, app_port = _free_port(), _free_port()
            bare_cmd = _server_cmd(server, "benchmarks.bare_asgi:application", bare_port, workers)
            with _process(bare_cmd, _env(), bare_port, "bare.log") as p:
                bare = _run_clients([f"ws://127.0.0.1:{bare_port}/ws/bare/"] * n, p.pid, client_procs)
            if getattr(args, "bare_only", False):
                rows.append({"N": n, "server": f"bare consumer ({label})", **bare, "load_avg_1m": os.getloadavg()[0]})
                print(json.dumps(rows[-1], default=str), flush=True)
                continue
            app_cmd = _server_cmd(server, "chatbot_saas.asgi:application", app_port, workers)
            with _process(app_cmd, _env(**llm_env), app_port, "app.log") as p:
                urls = [f"ws://127.0.0.1:{app_port}/ws/widget/{public_id}/?token={t}" for t in tokens]
                fake_cpu = _cpu(fake.pid)
                app = _run_clients(urls, p.pid, client_procs)
                app["fake_llm_cpu_s"] = _cpu(fake.pid) - fake_cpu
            load = os.getloadavg()[0]
            for name, row in (("bare consumer", bare), ("app", app)):
                rows.append({"N": n, "server": f"{name} ({label})", **row})
            ratio = app["cpu_s_per_1k_tokens"] / bare["cpu_s_per_1k_tokens"] if bare["completed"] else float("nan")
            rows[-1]["cpu_vs_bare"] = ratio
            rows[-2]["cpu_vs_bare"] = 1.0
            rows[-2]["fake_llm_cpu_s"] = float("nan")
            for row in rows[-2:]:
                row["load_avg_1m"] = load
            print(json.dumps(rows[-2:], default=str), flush=True)
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-fake-llm":
        serve_fake_llm(int(sys.argv[2]), sys.argv[3])
