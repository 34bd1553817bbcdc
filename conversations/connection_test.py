"""One tiny request to one model chain entry, for the bot editor's "Test connection" button.

It goes through the same provider code as a visitor's turn (conversations.llm.registry): the
tenant's key or the platform's, and the egress guard for a base URL a tenant set. The outcome is
said in plain words ("The API key was refused (401)", "Model not found", "Could not reach … :
connection refused", "Timed out after 10 s"), because the admin reading it is configuring, not
debugging.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from bots.selectors import ProviderKey

from .llm.base import ChatMessage, ChatRequest, ProviderError, TextDelta
from .llm.base import Timeouts as LLMTimeouts
from .llm.http import close_shared_http_client
from .llm.registry import build_provider

TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str
    latency_ms: int | None = None
    code: str = ""


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    for _ in range(8):
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    return seen


def _unreachable(exc: ProviderError, base_url: str) -> str:
    root = _root_cause(exc)
    if isinstance(root, ConnectionRefusedError) or "refused" in str(root).lower():
        reason = "connection refused"
    elif "name or service not known" in str(root).lower() or "nodename" in str(root).lower():
        reason = "the host name does not resolve"
    else:
        reason = str(root) or type(root).__name__
    return f"Could not reach {base_url or 'the provider'}: {reason}."


def explain(exc: ProviderError, *, base_url: str) -> str:
    """A ProviderError in the words an admin acts on."""
    if exc.code == "auth":
        return f"The API key was refused ({exc.status}). Check the provider key below."
    if exc.status == 404 or exc.code in ("model_not_found", "not_found_error"):
        return "Model not found: the provider does not know this model name."
    if exc.code == "timeout":
        return f"Timed out after {TIMEOUT_SECONDS:g} s."
    if exc.code == "connection":
        return _unreachable(exc, base_url)
    if exc.code == "rate_limited":
        return "The provider is rate limiting this key (429); try again in a minute."
    if exc.code == "quota":
        return f"The provider account is out of credit (HTTP {exc.status})."
    # no_key, provider_url_refused and the rest already say what to do.
    return exc.message


async def _ping(entry: dict[str, Any], key: ProviderKey | None) -> None:
    timeouts = LLMTimeouts(connect=TIMEOUT_SECONDS, first_token=TIMEOUT_SECONDS, idle=TIMEOUT_SECONDS)
    provider = build_provider(entry, key, timeouts)
    request = ChatRequest(
        model=entry["model"],
        system="Reply with one word.",
        messages=[ChatMessage("user", "ping")],
        max_tokens=1 if entry["provider"] != "offline" else 16,
        temperature=0.0,
        query="ping",
        no_answer="pong",
    )
    try:
        async for item in provider.stream(request):
            if isinstance(item, TextDelta):
                break  # the first token proves the connection; the rest is not needed
    finally:
        await provider.aclose()


async def _run(entry: dict[str, Any], key: ProviderKey | None) -> ConnectionResult:
    started = time.perf_counter()
    base_url = (entry.get("params") or {}).get("base_url") or (key.base_url if key else "") or ""
    try:
        await asyncio.wait_for(_ping(entry, key), timeout=TIMEOUT_SECONDS)
    except TimeoutError:
        return ConnectionResult(False, f"Timed out after {TIMEOUT_SECONDS:g} s.", code="timeout")
    except ProviderError as exc:
        return ConnectionResult(False, explain(exc, base_url=base_url), code=exc.code)
    finally:
        # A fresh event loop per test (asyncio.run below): close its pools with it.
        await close_shared_http_client()
    latency = round((time.perf_counter() - started) * 1000)
    return ConnectionResult(True, f"Connected: answered in {latency} ms.", latency_ms=latency)


def connection_test(*, entry: dict[str, Any], key: ProviderKey | None) -> ConnectionResult:
    """Call `entry` once (at most TIMEOUT_SECONDS) and report latency or the error in plain words.

    Blocking: call from a sync view. It runs on its own short-lived event loop, so it never shares
    (or closes) the connection pools of a server's loop.
    """
    return asyncio.run(_run(entry, key))
