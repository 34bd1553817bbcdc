"""How a delivery is signed; docs/webhooks.md gives the receiver's side.

    X-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

One `v1=` per valid secret: after a rotation the previous secret's signature follows the new
one's until it expires, so a receiver that still holds the old secret keeps accepting. The
timestamp is the attempt's, so a receiver can refuse old (replayed) requests.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Webhook-Signature"
EVENT_ID_HEADER = "X-Webhook-Id"
EVENT_TYPE_HEADER = "X-Webhook-Event"
USER_AGENT = "ChatbotSaaS-Webhooks/1.0"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a label, not a secret)


def secret_generate() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secrets_: list[str], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets_)])


def signature_verify(secret: str, header: str, body: bytes) -> bool:
    """The receiver's check (also used by our tests): one v1= matches the secret."""
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [value for key, value in parts if key == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    expected = signature(secret, int(timestamps[0]), body)
    return any(hmac.compare_digest(expected, value) for key, value in parts if key == "v1")
