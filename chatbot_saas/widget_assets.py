"""Response headers for the widget's own files under /static/widget/ (whitenoise hook).

The files run inside other people's pages, so they must load cross-origin (CORP
cross-origin; whitenoise already sends Access-Control-Allow-Origin: *). Opened directly as a
document on our origin, they get a CSP that allows nothing, so they can never serve as a
script-injection vector here. embed.js has a stable URL, so its cache lifetime is short.
"""

from __future__ import annotations

from collections.abc import MutableMapping

WIDGET_PREFIX = "/static/widget/"
WIDGET_ASSET_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"


def add_headers(headers: MutableMapping[str, str], path: str, url: str) -> None:
    if not url.startswith(WIDGET_PREFIX):
        return
    from django.conf import settings

    headers["Content-Security-Policy"] = WIDGET_ASSET_CSP
    headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cache-Control"] = f"public, max-age={settings.WIDGET_ASSET_MAX_AGE}"
