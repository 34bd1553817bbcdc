"""The one way the server fetches a URL a user gave us (pages and sitemaps).

Guarantees, checked before any connection and again on every redirect:
- only http and https, on any port, with no credentials in the URL;
- the host is resolved here and every address it resolves to must be globally routable:
  loopback, private, link-local (169.254.169.254, the cloud metadata address), shared,
  reserved, multicast and unspecified addresses are refused, including their decimal
  (http://2130706433/), hex (0x7f.0.0.1), short (127.1) and IPv6-mapped (::ffff:127.0.0.1) forms;
- the connection goes to the address we checked (the Host header and TLS SNI keep the
  name), so a DNS answer that changes between check and connect cannot redirect us;
- redirects are followed by hand, at most KNOWLEDGE_FETCH_MAX_REDIRECTS, each re-checked;
- the body is streamed and cut at KNOWLEDGE_FETCH_MAX_BYTES, the whole fetch at
  KNOWLEDGE_FETCH_TIMEOUT_SECONDS.
KNOWLEDGE_EGRESS_ALLOW_LOOPBACK (off by default) lets tests reach a server on 127.0.0.1/::1;
it relaxes the loopback rule only.

Every URL a tenant sets (pages and sitemaps here, model server base URLs in bots.validation and
conversations.llm.http, webhook endpoints in webhooks) goes through check_url / resolve; `post`
sends a webhook under the same rules (no redirects followed: a 3xx is the answer). TENANT_URL_ALLOWLIST (hosts or
networks, set by the operator) exempts a private server the operator wants tenants to reach,
such as an Ollama on the LAN; every other rule still applies to it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings

USER_AGENT = "ChatbotSaaS-Ingest/1.0 (+knowledge base crawler)"
_REDIRECTS = {301, 302, 303, 307, 308}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class EgressRefused(Exception):
    """The URL, an address it resolves to, a redirect or the response broke a rule."""

    def __init__(self, message: str, *, code: str = "url_refused") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FetchResult:
    url: str  # the final URL, after redirects
    status: int
    content_type: str
    content: bytes


def _loopback_allowed() -> bool:
    return bool(getattr(settings, "KNOWLEDGE_EGRESS_ALLOW_LOOPBACK", False))


@dataclass(frozen=True)
class Allowlist:
    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def allows(self, host: str, address: IPAddress) -> bool:
        return host.lower() in self.hosts or any(address in network for network in self.networks)


def allowlist() -> Allowlist:
    """TENANT_URL_ALLOWLIST parsed: an entry is a CIDR or address (a network) or else a host name."""
    hosts: set[str] = set()
    networks = []
    for entry in getattr(settings, "TENANT_URL_ALLOWLIST", ()):
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            hosts.add(entry.strip().lower().rstrip("."))
    return Allowlist(frozenset(hosts), tuple(networks))


def check_address(address: IPAddress) -> None:
    """Refuse any address that is not on the public internet."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            check_address(mapped)
            return
        if address.teredo is not None:
            raise EgressRefused(f"{address} is a tunnelled address.")
    if address.is_loopback and _loopback_allowed():
        return
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        raise EgressRefused(f"{address} is not a public internet address.")


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (resolved once, here); all must pass check_address
    unless TENANT_URL_ALLOWLIST names the host or the address's network. Connect only to these."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise EgressRefused(f"The host {host!r} could not be resolved.", code="url_unresolvable") from exc
    allowed = allowlist()
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not allowed.allows(host, address):
            try:
                check_address(address)
            except EgressRefused as exc:
                if _is_literal(host):
                    raise
                # The message reaches the tenant (a field error, a trace): never tell it what an
                # internal name resolves to.
                raise EgressRefused(
                    f"The host {host!r} resolves to something that is not a public internet address."
                ) from exc
        addresses.append(address)
    if not addresses:
        raise EgressRefused(f"The host {host!r} has no addresses.", code="url_unresolvable")
    return addresses


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_url(url: str) -> tuple[str, str, int, IPAddress]:
    """Validate `url`; return (scheme, host, port, vetted address)."""
    scheme, host, port = parse_url(url)
    addresses = resolve(host, port)
    return scheme, host, port, addresses[0]


def parse_url(url: str) -> tuple[str, str, int]:
    """The checks that need no DNS: http(s), a host, no credentials. Return (scheme, host, port)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise EgressRefused("The URL is malformed.", code="url_invalid") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise EgressRefused("Only http and https URLs can be fetched.", code="url_invalid")
    if parts.username or parts.password:
        raise EgressRefused("URLs with credentials are not fetched.", code="url_invalid")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise EgressRefused("The URL has no host.", code="url_invalid")
    return scheme, host, port or (443 if scheme == "https" else 80)


def _pinned_url(url: str, address: IPAddress, port: int) -> str:
    parts = urlsplit(url)
    host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    return urlunsplit((parts.scheme, f"{host}:{port}", parts.path or "/", parts.query, ""))


def fetch(url: str, *, max_bytes: int | None = None, timeout: float | None = None) -> FetchResult:
    """GET `url` under the rules above. Raises EgressRefused; never returns a refused body."""
    max_bytes = max_bytes or settings.KNOWLEDGE_FETCH_MAX_BYTES
    timeout = timeout or settings.KNOWLEDGE_FETCH_TIMEOUT_SECONDS
    deadline = time.monotonic() + timeout
    current = url
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _hop in range(settings.KNOWLEDGE_FETCH_MAX_REDIRECTS + 1):
            scheme, host, port, address = check_url(current)
            request = client.build_request(
                "GET",
                _pinned_url(current, address, port),
                headers={"Host": host if port in (80, 443) else f"{host}:{port}", "User-Agent": USER_AGENT},
                extensions={"sni_hostname": host} if scheme == "https" else {},
            )
            try:
                response = client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise EgressRefused(
                    f"Fetching {current} failed: {exc.__class__.__name__}.", code="fetch_failed"
                ) from exc
            try:
                if response.status_code in _REDIRECTS and response.headers.get("location"):
                    current = urljoin(current, response.headers["location"])
                    continue
                if response.status_code >= 400:
                    raise EgressRefused(f"{current} answered HTTP {response.status_code}.", code="fetch_failed")
                body = bytearray()
                for block in response.iter_bytes():
                    body.extend(block)
                    if len(body) > max_bytes:
                        raise EgressRefused(
                            f"{current} is larger than the {max_bytes} byte limit.", code="fetch_too_large"
                        )
                    if time.monotonic() > deadline:
                        raise EgressRefused(f"{current} took longer than {timeout} s.", code="fetch_timeout")
                return FetchResult(
                    url=current,
                    status=response.status_code,
                    content_type=response.headers.get("content-type", ""),
                    content=bytes(body),
                )
            except httpx.HTTPError as exc:
                raise EgressRefused(
                    f"Fetching {current} failed: {exc.__class__.__name__}.", code="fetch_failed"
                ) from exc
            finally:
                response.close()
    raise EgressRefused(
        f"{url} redirected more than {settings.KNOWLEDGE_FETCH_MAX_REDIRECTS} times.", code="fetch_failed"
    )


@dataclass(frozen=True)
class PostResult:
    status: int
    body: bytes  # at most max_bytes of it: enough to show the receiver's error


def post(url: str, *, content: bytes, headers: dict[str, str], timeout: float, max_bytes: int = 2048) -> PostResult:
    """POST `content` to `url` under the rules above, once, following no redirect. The address is
    checked (and pinned) at the moment of sending. Raises EgressRefused for a refused URL or a
    failed connection; any HTTP answer, 3xx to 5xx included, is returned for the caller to judge."""
    scheme, host, port, address = check_url(url)
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        request = client.build_request(
            "POST",
            _pinned_url(url, address, port),
            content=content,
            headers={**headers, "Host": host if port in (80, 443) else f"{host}:{port}"},
            extensions={"sni_hostname": host} if scheme == "https" else {},
        )
        try:
            response = client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise EgressRefused(f"{url} did not answer within {timeout} s.", code="fetch_timeout") from exc
        except httpx.HTTPError as exc:
            raise EgressRefused(f"Sending to {url} failed: {exc.__class__.__name__}.", code="fetch_failed") from exc
        try:
            body = bytearray()
            for block in response.iter_bytes():
                body.extend(block)
                if len(body) >= max_bytes:
                    break
        except httpx.HTTPError:
            pass  # the status is the answer; a body cut short only shortens what the log shows
        finally:
            response.close()
        return PostResult(status=response.status_code, body=bytes(body[:max_bytes]))
