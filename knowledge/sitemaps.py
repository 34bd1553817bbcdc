"""Sitemaps (sitemaps.org XML): page lists, sitemap indexes and gzip-compressed files.

XML is parsed with entity expansion and network access disabled. A sitemap index is followed
into its child sitemaps, depth first in document order, with every fetch made by the caller's
`fetch` (the egress guard in production), so each child URL is checked like any other.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from .egress import EgressRefused, FetchResult
from .parsing import ParseError

logger = logging.getLogger(__name__)

_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
_GZIP_MAGIC = b"\x1f\x8b"


def gunzip_capped(data: bytes, *, limit: int) -> bytes:
    """Decompress a gzip body, refusing to produce more than `limit` bytes (gzip bombs).

    The output is produced in bounded steps, so a small file claiming gigabytes never
    allocates more than `limit` + one step.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    pending = data
    try:
        while pending:
            out += inflater.decompress(pending, 1 << 16)
            if len(out) > limit:
                raise ParseError(
                    f"The compressed sitemap expands to more than {limit:,} bytes.", code="sitemap_too_large"
                )
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
        out += inflater.flush()
    except zlib.error as exc:
        raise ParseError("The compressed sitemap is damaged.", code="invalid_sitemap") from exc
    if len(out) > limit:
        raise ParseError(f"The compressed sitemap expands to more than {limit:,} bytes.", code="sitemap_too_large")
    return bytes(out)


def parse_sitemap(content: bytes, *, base_url: str, max_bytes: int) -> tuple[str, list[str]]:
    """("urlset" | "sitemapindex", the <loc> URLs in document order, http(s) only, deduplicated).

    Gzip is recognised by its magic bytes, not by a .gz name or a Content-Type.
    """
    if content.startswith(_GZIP_MAGIC):
        content = gunzip_capped(content, limit=max_bytes)
    try:
        root = ElementTree.fromstring(content)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise ParseError("The sitemap is not valid XML.", code="invalid_sitemap") from exc
    kind = root.tag.removeprefix(_NS)
    if kind not in ("urlset", "sitemapindex"):
        raise ParseError("The document is not a sitemap (<urlset> or <sitemapindex> expected).", code="invalid_sitemap")
    locs: dict[str, None] = {}
    for loc in root.iter(f"{_NS}loc"):
        url = urljoin(base_url, (loc.text or "").strip())
        if url.startswith(("http://", "https://")):
            locs.setdefault(url, None)
    return kind, list(locs)


@dataclass
class SitemapCrawl:
    pages: list[str] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)  # every sitemap fetched, root first
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (child sitemap URL, why)


def crawl_sitemap(
    root_url: str,
    *,
    fetch: Callable[[str], FetchResult],
    max_pages: int,
    max_depth: int,
    max_sitemaps: int,
    max_bytes: int,
) -> SitemapCrawl:
    """Follow a sitemap (index) tree and collect page URLs.

    - `max_pages` applies to the whole tree: once reached, no further sitemap is fetched.
    - Depth 0 is the root; a child index deeper than `max_depth` is skipped, as is any sitemap
      already visited (by its URL before and after redirects), so a cycle ends.
    - At most `max_sitemaps` files are fetched, however wide the index.
    - The root must be a valid sitemap (its errors raise ParseError/EgressRefused); a child
      that is refused by the egress guard, fails to fetch or is invalid is skipped and recorded.
    """
    crawler = _Crawler(fetch, max_pages, max_depth, max_sitemaps, max_bytes)
    crawler.visit(root_url, 0)
    return crawler.crawl


@dataclass
class _Crawler:
    fetch: Callable[[str], FetchResult]
    max_pages: int
    max_depth: int
    max_sitemaps: int
    max_bytes: int
    crawl: SitemapCrawl = field(default_factory=SitemapCrawl)
    visited: set[str] = field(default_factory=set)
    seen_pages: set[str] = field(default_factory=set)

    @property
    def full(self) -> bool:
        return len(self.crawl.pages) >= self.max_pages

    def _skip(self, url: str, reason: str) -> None:
        logger.info("sitemap %s skipped: %s", url, reason)
        self.crawl.skipped.append((url, reason))

    def visit(self, url: str, depth: int) -> None:
        if url in self.visited:
            return self._skip(url, "already visited (a cycle)")
        if len(self.crawl.sitemaps) >= self.max_sitemaps:
            return self._skip(url, f"more than {self.max_sitemaps} sitemaps")
        self.visited.add(url)
        result = self.fetch(url)
        if result.url != url and result.url in self.visited:
            return self._skip(url, f"redirects to {result.url}, already visited (a cycle)")
        self.visited.add(result.url)
        self.crawl.sitemaps.append(url)
        kind, locs = parse_sitemap(result.content, base_url=result.url, max_bytes=self.max_bytes)
        if kind == "urlset":
            for page in locs:
                if self.full:
                    break
                if page not in self.seen_pages:
                    self.seen_pages.add(page)
                    self.crawl.pages.append(page)
            return None
        for child in locs:
            if self.full:
                break
            if depth + 1 > self.max_depth:
                self._skip(child, f"deeper than {self.max_depth} levels of sitemap indexes")
                continue
            try:
                self.visit(child, depth + 1)
            except (EgressRefused, ParseError) as exc:
                self._skip(child, str(exc))
        return None
