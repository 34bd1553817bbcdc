"""OpenAI-compatible servers (Ollama, vLLM, LM Studio): the OpenAI client with another base URL."""

from __future__ import annotations

from .base import Timeouts
from .openai_provider import OpenAIProvider


class OpenAICompatibleProvider(OpenAIProvider):
    name = "openai_compatible"
    max_tokens_param = "max_tokens"

    def __init__(self, *, api_key: str | None, base_url: str | None, timeouts: Timeouts, guarded: bool = False) -> None:
        # Local servers usually take any key, but the SDK insists on one.
        super().__init__(api_key=api_key or "not-needed", base_url=base_url, timeouts=timeouts, guarded=guarded)
