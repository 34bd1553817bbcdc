"""The README stays a short page for users, and its links and docs/'s links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_at_most_250_lines_and_its_titles_carry_no_issue_numbers():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    titles = [line for line in lines if line.startswith("#")]
    assert titles and not [t for t in titles if re.search(r"\bissue\b|#\d", t, re.IGNORECASE)]


def test_every_relative_link_of_the_readme_and_docs_leads_to_a_file_in_the_repository():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                broken.append((page.name, target))  # the pages link inside the repository only
            elif not (page.parent / target).exists():
                broken.append((page.name, target))
    assert broken == []


def test_the_readme_links_every_page_of_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    unlinked = [p.name for p in PAGES[1:] if f"(docs/{p.name})" not in readme]
    assert unlinked == []
