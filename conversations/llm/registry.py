"""Build the provider for one chain entry, with the tenant's key or the platform's."""

from __future__ import annotations

from typing import Any

from bots.selectors import ProviderKey

from .anthropic_provider import AnthropicProvider
from .base import LLMProvider, ProviderError, Timeouts
from .offline import OfflineProvider
from .openai_compatible import OpenAICompatibleProvider
from .openai_provider import OpenAIProvider


def build_provider(entry: dict[str, Any], key: ProviderKey | None, timeouts: Timeouts) -> LLMProvider:
    """Raise a non-retryable ProviderError when the entry cannot be called (no key)."""
    provider = entry["provider"]
    if provider == "offline":
        return OfflineProvider()
    if provider == "openai_compatible":
        base_url = entry.get("params", {}).get("base_url") or (key.base_url if key else None)
        return OpenAICompatibleProvider(api_key=key.api_key if key else None, base_url=base_url, timeouts=timeouts)
    if key is None or not key.api_key:
        raise ProviderError(
            (key.problem if key else "") or f"No {provider} API key is configured.", code="no_key", retryable=False
        )
    if provider == "openai":
        return OpenAIProvider(api_key=key.api_key, base_url=key.base_url, timeouts=timeouts)
    if provider == "anthropic":
        return AnthropicProvider(api_key=key.api_key, base_url=key.base_url, timeouts=timeouts)
    raise ProviderError(f"Unknown provider {provider!r}.", code="invalid_request", retryable=False)
