"""Capacity: answers per second one web process sustains at a steady (Poisson) arrival rate, and
what visitors feel at 3x that rate. The code under test and the code it forked from (`--before`,
default: the merge base with main, unpacked with `git archive` into var/bench-before/<sha>) run in
the same benchmark, alternately, against the same databases and the same fake provider
(benchmarks/streaming.py: 30 tokens/s, 60-token answers, 0.2 s to the first token).

Per version and rate R (answers/s; `--rates`, default 4,8,12,16,24,32), for `--duration` seconds
(default 60) new visitors arrive at Poisson times, each opens the widget socket, asks one question
(with an idempotency key) and reads the answer to its `end`. A `server_busy` refusal is timed (the
notice latency) and retried after its `retry_after` with the same key, as the widget does. The
clients run in other processes (`--client-procs`).

Reported per version and rate: time to first token added (first text minus the provider's 0.2 s),
p50/p99 for admitted answers; refusals and their notice latency; dropped or corrupted streams;
duplicate messages (a visitor with more than one question stored); web CPU, Redis commands
(INFO commandstats) and DB transactions (pg_stat_database) per answer. Capacity is the highest R
whose p99 stays within 250 ms with nothing dropped or refused (every rate is tried until two in a row
fail). Then both versions run at 3x the higher of the two capacities (the same offered load).

CPU per answer split into open (message to first text), relay (first text to last text) and
settle (last text to `end`, plus the turn's tail) comes from turns asked one at a time, with the
server's CPU read at each boundary (psutil, 10 ms ticks, averaged over the turns).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import percentile
from .streaming import (
    BASE_DIR,
    ORIGIN,
    TTFT,
    _bench_data,
    _env,
    _free_port,
    _process,
    _server_cmd,
    _service_counts,
    _tree_cpu,
    answer_text,
)

TITLE = "Capacity per web process at a Poisson arrival rate (fake provider, 30 tokens/s, 60-token answers)"
P99_GOAL_MS = 250.0
DEFAULT_RATES = "4,8,12,16,24,32"
PHASE_TURNS = 12
WARMUP_TURNS = 3
MAX_RETRIES = 20
QUESTION = "Tell me about the product, please."


@dataclass
class Visit:
    at: float
    sent_at: float = 0.0
    first_at: float | None = None
    text: str = ""
    seqs: list[int] = field(default_factory=list)
    end_content: str | None = None
    refusals: int = 0
    notice_ms: list[float] = field(default_factory=list)
    error: str | None = None


def _before_tree(ref: str | None) -> tuple[str, Path]:
    """The code to compare against, unpacked once per commit (no git worktree: nothing to clean up)."""
    ref = ref or subprocess.check_output(["git", "merge-base", "HEAD", "main"], cwd=BASE_DIR, text=True).strip()
    sha = subprocess.check_output(["git", "rev-parse", "--short", ref], cwd=BASE_DIR, text=True).strip()
    target = BASE_DIR / "var" / "bench-before" / sha
    if not (target / "manage.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha], cwd=BASE_DIR, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return sha, target


def _tokens(bot_public_id: str, prefix: str, n: int) -> list[str]:
    from conversations.tokens import SessionClaims, session_token_issue

    return [session_token_issue(claims=SessionClaims(bot_public_id, f"{prefix}-{i:06d}", ORIGIN)) for i in range(n)]


async def _visit(url: str, visit: Visit, key: str, deadline: float) -> None:
    from websockets.asyncio.client import connect

    try:
        await asyncio.sleep(max(0.0, visit.at - time.monotonic()))
        async with connect(url, origin=ORIGIN, open_timeout=60, ping_interval=None, max_queue=None) as ws:
            frame_out = json.dumps({"type": "message", "text": QUESTION, "client_id": key, "idempotency_key": key})
            while True:
                visit.sent_at = time.monotonic()
                await ws.send(frame_out)
                retry_after = await _read_answer(ws, visit, deadline)
                if retry_after is None:
                    return
                if visit.refusals > MAX_RETRIES:
                    visit.error = "gave_up"
                    return
                await asyncio.sleep(retry_after)
    except Exception as exc:  # a dropped stream is a result, not a crash of the benchmark
        visit.error = visit.error or type(exc).__name__


async def _read_answer(ws: Any, visit: Visit, deadline: float) -> float | None:
    """Read one attempt's frames; returns the retry delay after a `server_busy`, else None."""
    while True:
        raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
        now = time.monotonic()
        frame = json.loads(raw)
        kind = frame["type"]
        if kind == "error":
            if frame.get("code") == "server_busy":
                visit.refusals += 1
                visit.notice_ms.append((now - visit.sent_at) * 1000)
                return float(frame.get("retry_after") or 1)
            visit.error = frame.get("code")
            return None
        if kind == "start":
            continue
        if kind == "delta":
            if visit.first_at is None:
                visit.first_at = now
            visit.text += frame["text"]
        elif kind == "reset":
            visit.text = ""
        visit.seqs.append(frame["seq"])
        if kind == "end":
            visit.end_content = frame["content"]
            if frame.get("status") != "complete":
                visit.error = f"end_{frame.get('status')}"
            return None


def _client_slice(plan: list[tuple[str, float, str]], deadline: float) -> list[Visit]:
    async def main() -> list[Visit]:
        visits = [Visit(at=at) for _, at, _ in plan]
        await asyncio.gather(*(_visit(url, v, key, deadline) for (url, _, key), v in zip(plan, visits, strict=True)))
        return visits

    return asyncio.run(main())


def _arrivals(rate: float, duration: float, seed: int) -> list[float]:
    rng = random.Random(seed)  # the same arrivals for both versions at a rate
    times, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            return times
        times.append(t)


def _duplicates(prefix: str) -> int:
    """Questions stored beyond one per visitor (each visitor asks once, retries included)."""
    from django.db.models import Count

    from conversations.models import Message

    per_visitor = (
        Message.objects.unscoped()
        .filter(conversation__visitor_id__startswith=prefix + "-", role="user")
        .values("conversation__visitor_id")
        .annotate(n=Count("id"))
    )
    return sum(row["n"] - 1 for row in per_visitor if row["n"] > 1)


def _steady_run(base_url: str, pid: int, bot: str, rate: float, args: argparse.Namespace, prefix: str) -> dict:
    times = _arrivals(rate, args.duration, seed=int(rate * 1000))
    tokens = _tokens(bot, prefix, len(times))
    procs = max(1, getattr(args, "client_procs", 1) or 1)
    start_at = time.monotonic() + 3.0  # spawning the client processes
    deadline = start_at + args.duration + 120.0
    plan = [
        (f"{base_url}?token={tok}", start_at + t, f"{prefix}-k{i}")
        for i, (t, tok) in enumerate(zip(times, tokens, strict=True))
    ]
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_client_slice, plan[k::procs], deadline) for k in range(procs)]
        time.sleep(max(0.0, start_at - 0.2 - time.monotonic()))
        cpu_before, counts_before = _tree_cpu(pid), _service_counts()
        visits = [v for f in futures for v in f.result()]
        cpu = _tree_cpu(pid) - cpu_before
    time.sleep(2.0)  # Postgres backends publish their statistics within ~1 s of going idle
    counts_after = _service_counts()
    answers = sum(1 for v in visits if v.end_content is not None) or 1
    commands = {
        k.removeprefix("redis:"): round((n - counts_before.get(k, 0)) / answers, 2)
        for k, n in counts_after.items()
        if k.startswith("redis:") and n != counts_before.get(k, 0)
    }
    print(f"{prefix} redis commands per answer: {json.dumps(commands, sort_keys=True)}", flush=True)
    return _summary(visits, cpu, counts_before, counts_after, rate, prefix)


def _summary(visits: list[Visit], cpu: float, before: dict, after: dict, rate: float, prefix: str) -> dict:
    expected = answer_text()
    ttft, notice = [], []
    completed = dropped = 0
    errors: dict[str, int] = {}
    for v in visits:
        notice += v.notice_ms
        if v.error:
            errors[v.error] = errors.get(v.error, 0) + 1
        ok = (
            v.end_content is not None
            and v.seqs == list(range(v.seqs[0], v.seqs[0] + len(v.seqs)))
            and v.text == expected
            and v.end_content.strip() == expected.strip()
        )
        if ok and v.first_at is not None:
            completed += 1
            ttft.append((v.first_at - v.sent_at - TTFT) * 1000)
        elif v.error != "gave_up":
            dropped += 1
    per = completed or math.nan
    return {
        "rate_per_s": rate,
        "offered": len(visits),
        "completed": completed,
        "ttft_added_p50_ms": percentile(ttft, 50),
        "ttft_added_p99_ms": percentile(ttft, 99),
        "refused_visitors": sum(1 for v in visits if v.refusals),
        "refusals": sum(v.refusals for v in visits),
        "notice_p99_ms": percentile(notice, 99),
        "notice_max_ms": max(notice) if notice else math.nan,
        "dropped_or_bad": dropped,
        "duplicates": _duplicates(prefix),
        "cpu_ms_per_answer": cpu * 1000 / per,
        "redis_per_answer": (after["redis_cmds"] - before["redis_cmds"]) / per,
        "db_xacts_per_answer": (after["db_xacts"] - before["db_xacts"] - 2) / per,
        "errors": ",".join(f"{k}:{n}" for k, n in sorted(errors.items())) or "-",
        "load_avg_1m": os.getloadavg()[0],
    }


async def _phase_turns(base_url: str, pid: int, tokens: list[str]) -> dict[str, float]:
    """Turns one at a time; the server's CPU read at send, first text, last text and after `end`."""
    from websockets.asyncio.client import connect

    totals = {"open": 0.0, "relay": 0.0, "settle": 0.0}
    # What the idle process tree burns (timers, the query-embedding child): subtracted per phase.
    idle_at, idle_cpu = time.monotonic(), _tree_cpu(pid)
    await asyncio.sleep(3.0)
    idle_rate = (_tree_cpu(pid) - idle_cpu) / (time.monotonic() - idle_at)
    for token in tokens:
        async with connect(f"{base_url}?token={token}", origin=ORIGIN, ping_interval=None) as ws:
            await asyncio.sleep(0.3)
            marks, at = [_tree_cpu(pid)], [time.monotonic()]
            await ws.send(json.dumps({"type": "message", "text": QUESTION}))
            last_text, last_at = None, time.monotonic()
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "delta":
                    if len(marks) == 1:
                        marks.append(_tree_cpu(pid))
                        at.append(time.monotonic())
                    last_text, last_at = _tree_cpu(pid), time.monotonic()
                elif frame["type"] in ("end", "error"):
                    break
            await asyncio.sleep(0.3)  # the turn's tail: metrics, log line, buffer flush
            marks += [last_text or marks[-1], _tree_cpu(pid)]
            at += [last_at, time.monotonic()]
        for i, phase in enumerate(("open", "relay", "settle")):
            totals[phase] += marks[i + 1] - marks[i] - idle_rate * (at[i + 1] - at[i])
    return {f"cpu_{k}_ms": v * 1000 / len(tokens) for k, v in totals.items()}


def _serve(code_dir: Path, llm_env: dict[str, str], workers: int, log: str) -> tuple[Any, int]:
    port = _free_port()
    cmd = _server_cmd("daphne", "chatbot_saas.asgi:application", port, workers)
    env = _env(**llm_env, PYTHONPATH=str(code_dir), RATE_LIMIT_VISITOR="100000/60", METRICS_TOKEN="bench")
    return _process(cmd, env, port, log, cwd=code_dir), port


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rates = [float(r) for r in (args.rates or ("2,4" if args.quick else DEFAULT_RATES)).split(",")]
    workers = getattr(args, "workers", 1) or 1
    sha, before_dir = _before_tree(args.before)
    from conversations.models import Conversation

    # The previous run's conversations first: its tenant's cascade can miss rows of turns that
    # were still settling when its servers stopped.
    Conversation.objects.unscoped().filter(tenant__slug="bench-streaming").delete()
    public_id, _ = _bench_data(0)
    llm_port = _free_port()
    fake_cmd = [sys.executable, "-m", "benchmarks.streaming", "--serve-fake-llm", str(llm_port), "asyncio"]
    rows: list[dict[str, Any]] = []
    capacity: dict[str, float] = {}
    run_id = int(time.time())
    llm_env = {"OPENAI_API_KEY": "bench-key", "OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1"}
    with ExitStack() as stack:
        stack.enter_context(_process(fake_cmd, _env(), llm_port, "fake-llm.log"))
        # Both versions stay up for the whole run (an idle server costs nothing), so every step
        # alternates between two warm processes.
        servers = {}
        for label, code_dir in ((f"before ({sha})", before_dir), ("after", BASE_DIR)):
            server, port = _serve(code_dir, llm_env, workers, f"capacity-{label.split()[0]}.log")
            proc = stack.enter_context(server)
            url = f"ws://127.0.0.1:{port}/ws/widget/{public_id}/"
            tokens = _tokens(public_id, f"cap{run_id}-{label.split()[0]}-ph", WARMUP_TURNS + PHASE_TURNS)
            asyncio.run(_phase_turns(url, proc.pid, tokens[:WARMUP_TURNS]))  # first turns warm pools and SDKs
            servers[label] = (url, proc.pid, asyncio.run(_phase_turns(url, proc.pid, tokens[WARMUP_TURNS:])))

        def one(label: str, rate: float, kind: str) -> dict:
            url, pid, phases = servers[label]
            prefix = f"cap{run_id}-{label.split()[0]}-{kind.split()[0]}-{rate:g}"
            row = {"code": label, "run": kind, "workers": workers, **phases}
            row.update(_steady_run(url, pid, public_id, rate, args, prefix))
            print(json.dumps(row, default=str), flush=True)
            rows.append(row)
            return row

        # Every rate for both versions, alternately (the machine's noise hits both alike): on a
        # shared machine one stall can fail a low rate, so capacity is the highest rate that passed.
        misses = dict.fromkeys(servers, 0)
        for rate in rates:
            for label in servers:
                if misses[label] >= 2:
                    continue  # two rates failed in a row: past its capacity
                row = one(label, rate, "ramp")
                if row["ttft_added_p99_ms"] > P99_GOAL_MS or row["dropped_or_bad"] or row["refusals"]:
                    misses[label] += 1
                else:
                    misses[label] = 0
                    capacity[label] = rate
            if all(n >= 2 for n in misses.values()):
                break
        # Both versions at one overload rate, 3x the best capacity found: the same offered load.
        overload = 3 * max(capacity.values(), default=rates[0])
        for label in servers:
            one(label, overload, "3x capacity")
    for row in rows:
        row["capacity_per_s"] = capacity.get(row["code"], math.nan) / workers
    return rows
