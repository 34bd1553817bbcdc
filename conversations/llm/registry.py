"""Build the provider for one chain entry, with the tenant's key or the platform's."""

from __future__ import annotations

from typing import Any

from bots.selectors import ProviderKey
from knowledge.egress import EgressRefused, parse_url

from .anthropic_provider import AnthropicProvider
from .base import ChatRequest, LLMProvider, ProviderError, TextDelta, Timeouts
from .errors import url_refused
from .offline import OfflineProvider
from .openai_compatible import OpenAICompatibleProvider
from .openai_provider import OpenAIProvider


def build_provider(entry: dict[str, Any], key: ProviderKey | None, timeouts: Timeouts) -> LLMProvider:
    """Raise a non-retryable ProviderError when the entry cannot be called (no key, or a refused
    tenant base URL). A base URL a tenant set (the chain entry's, or its provider key's) is never
    trusted: it is checked here and the provider sends through the egress guard's pool, which
    checks the address again at every request (conversations.llm.http)."""
    provider = entry["provider"]
    if provider == "offline":
        return OfflineProvider()
    if provider == "openai_compatible":
        entry_url = entry.get("params", {}).get("base_url")
        if entry_url and key is not None and key.source == "platform":
            # The operator's key is for the operator's server, never for a URL a tenant chose.
            key = None
        base_url = entry_url or (key.base_url if key else None)
        guarded = bool(entry_url) or bool(key and key.tenant_base_url)
        if guarded:
            _check_tenant_url(provider, base_url)
        return OpenAICompatibleProvider(
            api_key=key.api_key if key else None, base_url=base_url, timeouts=timeouts, guarded=guarded
        )
    if key is None or not key.api_key:
        raise ProviderError(
            (key.problem if key else "") or f"No {provider} API key is configured.", code="no_key", retryable=False
        )
    if key.tenant_base_url:
        _check_tenant_url(provider, key.base_url)
    if provider == "openai":
        return OpenAIProvider(
            api_key=key.api_key, base_url=key.base_url, timeouts=timeouts, guarded=key.tenant_base_url
        )
    if provider == "anthropic":
        return AnthropicProvider(
            api_key=key.api_key, base_url=key.base_url, timeouts=timeouts, guarded=key.tenant_base_url
        )
    raise ProviderError(f"Unknown provider {provider!r}.", code="invalid_request", retryable=False)


async def complete_text(
    entry: dict[str, Any], key: ProviderKey | None, timeouts: Timeouts, request: ChatRequest
) -> str:
    """One non-streamed answer from a chain entry: its text deltas joined, the provider closed.
    For the pipeline's side requests (memory summaries, follow-up rewrites); raises ProviderError."""
    provider = build_provider(entry, key, timeouts)
    parts: list[str] = []
    try:
        async for item in provider.stream(request):
            if isinstance(item, TextDelta):
                parts.append(item.text)
    finally:
        await provider.aclose()
    return "".join(parts)


def _check_tenant_url(provider: str, url: Any) -> None:
    """The checks that need no DNS (scheme, host, credentials); the address is checked per request."""
    try:
        parse_url(url if isinstance(url, str) else "")
    except EgressRefused as exc:
        raise url_refused(provider, exc) from None
