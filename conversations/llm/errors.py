"""Turn the SDKs' exceptions into classified ProviderErrors.

Both official SDKs raise `APIStatusError` subclasses (with `.status_code`, `.body`, `.response`)
for HTTP errors and for error events inside a 200 stream, `APITimeoutError` and
`APIConnectionError` for network failures. We classify on status and on the error's type/code
in the body, so an `insufficient_quota` 429 is never retried while a rate-limit 429 is.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import anthropic
import httpx2
import openai

from knowledge.egress import EgressRefused

from .base import ProviderError

# Error types/codes in a body that mean "your account cannot do this": never retried.
NEVER_RETRY = {
    "insufficient_quota",
    "billing_hard_limit_reached",
    "billing_error",
    "spend_limit_reached",
    "invalid_api_key",
    "authentication_error",
    "permission_error",
    "invalid_request_error",
    "not_found_error",
    "model_not_found",
}
RETRY = {"overloaded_error", "api_error", "rate_limit_error", "server_error", "timeout_error", "rate_limit_exceeded"}


def _body_codes(body: Any) -> set[str]:
    codes: set[str] = set()
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            for key in ("type", "code"):
                if isinstance(error.get(key), str):
                    codes.add(error[key])
            message = str(error.get("message", "")).lower()
            if "credit balance" in message or "spend limit" in message or "quota" in message:
                codes.add("spend_limit_reached")
    return codes


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), or retry-after-ms; None if absent or bad."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):  # neither seconds nor an HTTP date: ignore it
        return None
    return max(0.0, parsed.timestamp() - time.time())


def url_refused(provider: str, exc: EgressRefused) -> ProviderError:
    """A tenant-set base URL the egress guard refused: a configuration problem, never retried."""
    return ProviderError(
        f"The {provider} base URL was refused and not called: {exc} Set a model server on the public internet "
        "in the bot's model chain or provider key (or ask the operator to add it to TENANT_URL_ALLOWLIST).",
        code="provider_url_refused",
        retryable=False,
    )


def _refusal_in(exc: BaseException) -> EgressRefused | None:
    # The SDKs wrap what the transport raises in APIConnectionError; the refusal is its cause.
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None or isinstance(seen, EgressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def classify(exc: BaseException, *, provider: str) -> ProviderError:
    """Map any SDK or transport exception to a ProviderError (never raises)."""
    if isinstance(exc, ProviderError):
        return exc
    refusal = _refusal_in(exc)
    if refusal is not None:
        return url_refused(provider, refusal)
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError | httpx2.TimeoutException):
        return ProviderError(f"{provider} timed out.", code="timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError | httpx2.TransportError):
        return ProviderError(
            f"The connection to {provider} failed or dropped: {exc}", code="connection", retryable=True
        )
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        return _classify_status(exc, provider=provider)
    if isinstance(exc, openai.APIError | anthropic.APIError):
        # An error event inside a 200 stream (OpenAI sends {"error": {...}} as a data line).
        codes = _body_codes({"error": getattr(exc, "body", None)})
        if codes & NEVER_RETRY:
            return ProviderError(f"{provider} refused mid-stream: {exc}", code=sorted(codes)[0], retryable=False)
        return ProviderError(f"{provider} sent an error event mid-stream: {exc}", code="stream_error", retryable=True)
    return ProviderError(
        f"{provider} failed unexpectedly: {type(exc).__name__}: {exc}", code="unexpected", retryable=True
    )


def _classify_status(exc: Any, *, provider: str) -> ProviderError:
    status = exc.status_code
    codes = _body_codes(exc.body)
    retry_after = retry_after_seconds(getattr(exc.response, "headers", None))
    if status == 200:  # an error event after the stream started (Anthropic)
        retryable = not (codes & NEVER_RETRY)
        return ProviderError(
            f"{provider} sent an error event mid-stream ({', '.join(sorted(codes)) or 'unknown'}).",
            code="stream_error" if retryable else sorted(codes)[0],
            retryable=retryable,
            status=status,
        )
    if status in (401, 403):
        return ProviderError(
            f"{provider} rejected the API key (HTTP {status}). Check the key in Bots → Provider keys or the "
            f"{provider.upper()}_API_KEY setting.",
            code="auth",
            retryable=False,
            status=status,
        )
    if (
        codes & {"insufficient_quota", "billing_hard_limit_reached", "billing_error", "spend_limit_reached"}
        or status == 402
    ):
        return ProviderError(
            f"The {provider} account is out of credit or over its spend limit (HTTP {status}); add credit with {provider}.",
            code="quota",
            retryable=False,
            status=status,
        )
    if status == 429:
        return ProviderError(
            f"{provider} is rate limiting (HTTP 429).",
            code="rate_limited",
            retryable=True,
            status=status,
            retry_after=retry_after,
        )
    if status >= 500 or status == 408 or codes & RETRY:
        code = "overloaded" if status == 529 or "overloaded_error" in codes else "server_error"
        return ProviderError(
            f"{provider} failed (HTTP {status}).", code=code, retryable=True, status=status, retry_after=retry_after
        )
    return ProviderError(
        f"{provider} refused the request (HTTP {status}): {str(exc)[:300]}",
        code="invalid_request",
        retryable=False,
        status=status,
    )
