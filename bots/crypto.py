"""Encryption of tenants' provider keys at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _fernet() -> Fernet:
    key = settings.FIELD_ENCRYPTION_KEY
    if key:
        try:
            return Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes); "
                "generate one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
            ) from None
    # Derived from SECRET_KEY so local runs need nothing; rotating SECRET_KEY then makes stored keys unreadable.
    digest = hashlib.sha256(("field-encryption:" + settings.SECRET_KEY).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str | None:
    """The plain text, or None when the key changed since it was stored (the caller reports it)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None
