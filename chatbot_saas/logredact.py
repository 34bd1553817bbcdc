"""The second wall against secrets in logs: every log line is scrubbed of anything shaped like one.

The first wall is at the source (no code logs an Authorization header, a key or a token; see
chatbot_saas/api.py for the one a library did). This one catches what slips through, tracebacks
included, because it works on the formatted line: our API keys (`cbk_…`), provider keys
(`sk-…`, `sk-ant-…`), Stripe secrets (`sk_live_…`, `rk_test_…`, `whsec_…`), Authorization
header values, session cookies and signed widget session tokens.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[REDACTED]"

_PATTERNS = [
    # Authorization header values, whatever the scheme's case.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=\-:]{12,}"), rf"\1\2{REDACTED}"),
    (re.compile(r"\bcbk_[A-Za-z0-9_\-]+"), f"cbk_{REDACTED}"),
    (re.compile(r"\b(sk|rk)_(live|test)_[A-Za-z0-9]+"), rf"\1_\2_{REDACTED}"),
    (re.compile(r"\bwhsec_[A-Za-z0-9]+"), f"whsec_{REDACTED}"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{12,}"), f"sk-{REDACTED}"),
    # Django signing tokens (widget session tokens): payload:timestamp:signature.
    (re.compile(r"\.?[A-Za-z0-9_\-]{20,}:[A-Za-z0-9]{4,}:[A-Za-z0-9_\-]{20,}"), REDACTED),
    (re.compile(r"(?i)\b(sessionid|csrftoken)=[^;\s\"']+"), rf"\1={REDACTED}"),
    (re.compile(r"(?i)([?&](?:token|key|api_key|access_token)=)[^&\s\"']+"), rf"\1{REDACTED}"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A logging.Formatter whose output, traceback included, has secrets replaced."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactSecretsFilter(logging.Filter):
    """For handlers that do not format through RedactingFormatter (e.g. a log shipper): rewrites
    the record's message and drops its args, so the secret is gone before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
