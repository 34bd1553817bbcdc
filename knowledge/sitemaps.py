"""Sitemap parsing (sitemaps.org XML), with entity expansion and network access disabled."""

from __future__ import annotations

from urllib.parse import urljoin

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from .parsing import ParseError

_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


def sitemap_page_urls(content: bytes, *, base_url: str, limit: int) -> list[str]:
    """Page URLs listed by a sitemap, at most `limit`, in document order, deduplicated.

    A sitemap index is not followed (each child sitemap would be another fetch); add the child
    sitemaps as their own documents instead.
    """
    try:
        root = ElementTree.fromstring(content)
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise ParseError("The sitemap is not valid XML.", code="invalid_sitemap") from exc
    tag = root.tag.removeprefix(_NS)
    if tag == "sitemapindex":
        raise ParseError(
            "This is a sitemap index; add one of the sitemaps it lists instead.", code="sitemap_index_unsupported"
        )
    if tag != "urlset":
        raise ParseError("The document is not a sitemap (<urlset> expected).", code="invalid_sitemap")
    urls: list[str] = []
    for loc in root.iter(f"{_NS}loc"):
        url = urljoin(base_url, (loc.text or "").strip())
        if url.startswith(("http://", "https://")) and url not in urls:
            urls.append(url)
        if len(urls) >= limit:
            break
    return urls
