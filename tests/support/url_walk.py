"""Walk every URL pattern and try tenant B's credentials against tenant A's objects.

Rules, applied to every route the URLconf has, so new apps are covered without new code:
- `<tenant_slug>` is filled with B's slug (B's user is a member of B and logged in);
- `<x_id>` must name a tenant-owned model `x` (by model_name) and gets A's object pk;
  `<x_public_id>` gets A's object's `public_id`;
- every other kwarg must be declared in EXEMPT_KWARGS with the reason it is not tenant data;
- each request is also sent with B's API key as `Authorization: Bearer`.
For each route, every HTTP method that is not refused with 405 must answer 404, and the same
route with A's slug as B must answer 404 too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from tenants.scoping import TenantScopedModel

# kwargs that carry no tenant-owned id, with the reason.
EXEMPT_KWARGS: dict[str, str] = {
    "token": "invitation tokens are looked up by hash; the token itself is the credential",
    "path": "static/media file paths",
}

# Whole URL prefixes outside tenant scoping, with the reason.
EXEMPT_PREFIXES: dict[str, str] = {
    "admin/": "operators' Django admin: staff-only, sees every tenant by design",
}


_KWARG_RE = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>\w+)>")


@dataclass
class Route:
    template: str
    name: str | None
    kwargs: list[str] = field(default_factory=list)
    public: bool = False

    def fill(self, values: dict[str, str]) -> str:
        return "/" + _KWARG_RE.sub(lambda m: str(values[m.group("name")]), self.template)


def iter_routes(urlconf: str | None = None) -> Iterator[Route]:
    def walk(patterns: list, prefix: str) -> Iterator[Route]:
        for entry in patterns:
            if not isinstance(entry.pattern, RoutePattern):
                continue  # regex routes: admin internals, static serving; not tenant pages
            route = prefix + str(entry.pattern)
            if any(route.startswith(p) for p in EXEMPT_PREFIXES):
                continue
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern):
                public = bool(getattr(entry.callback, "public_route_reason", None))
                yield Route(route, entry.name, [m.group("name") for m in _KWARG_RE.finditer(route)], public)

    yield from walk(get_resolver(urlconf).url_patterns, "")


def scoped_models() -> dict[str, type[TenantScopedModel]]:
    return {m._meta.model_name: m for m in apps.get_models() if issubclass(m, TenantScopedModel)}


def _value_for(kwarg: str, tenant_b_slug: str, objects_a: dict[type, object]) -> str | None:
    models = scoped_models()
    if kwarg == "tenant_slug":
        return tenant_b_slug
    for suffix, attr in (("_public_id", "public_id"), ("_id", "pk")):
        if kwarg.endswith(suffix):
            model = models.get(kwarg[: -len(suffix)])
            if model is None:
                raise AssertionError(
                    f"URL kwarg <{kwarg}> names no tenant-owned model. Name id kwargs <model_name>_id "
                    f"(known: {', '.join(sorted(models))}) or add it to EXEMPT_KWARGS with a reason."
                )
            return str(getattr(objects_a[model], attr))
    if kwarg in EXEMPT_KWARGS:
        return None
    raise AssertionError(f"URL kwarg <{kwarg}> is not understood by the cross-tenant walk; see EXEMPT_KWARGS.")


def _is_leak(response_status: int) -> bool:
    return response_status not in (404, 405)


def find_cross_tenant_leaks(
    *,
    client_b: Client,
    tenant_a_slug: str,
    tenant_b_slug: str,
    objects_a: dict[type, object],
    api_key_b: str | None = None,
    urlconf: str | None = None,
) -> list[str]:
    """Return one line per leak; an empty list means every route refused tenant B."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {api_key_b}"} if api_key_b else {}
    leaks: list[str] = []
    for route in iter_routes(urlconf):
        values: dict[str, str] = {}
        exempt = False
        for kwarg in route.kwargs:
            value = _value_for(kwarg, tenant_b_slug, objects_a)
            if value is None:
                exempt = True
                break
            values[kwarg] = value
        has_object_id = any(k.endswith("_id") for k in route.kwargs)
        # Views marked @public_route(reason=...) are public on purpose (e.g. reached by a bot's public id).
        if exempt or not route.kwargs or route.public:
            continue
        if has_object_id:
            url = route.fill(values)
            statuses = {
                "GET": client_b.get(url, **headers).status_code,
                "POST": client_b.post(url, data={}, **headers).status_code,
                "DELETE": client_b.delete(url, **headers).status_code,
            }
            if any(_is_leak(s) for s in statuses.values()) or 404 not in statuses.values():
                leaks.append(f"{url} ({route.name}) answered {statuses} to tenant B for tenant A's objects")
        if "tenant_slug" in route.kwargs:
            own_ids = {k: v for k, v in values.items()}
            own_ids["tenant_slug"] = tenant_a_slug
            url = route.fill(own_ids)
            status = client_b.get(url, **headers).status_code
            if status != 404:
                leaks.append(f"{url} ({route.name}) answered {status} to a non-member using tenant A's slug")
    return leaks
