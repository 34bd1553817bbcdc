"""Real text for the knowledge benchmarks, found offline: this repo's docs and the prose files
(READMEs, licences, changelogs) shipped in the installed packages. Not a benchmark itself."""

from __future__ import annotations

import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def real_paragraphs(limit: int, *, min_chars: int = 200) -> list[str]:
    """Up to `limit` distinct prose paragraphs, in a stable order."""
    roots = [BASE_DIR / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    for pattern in ("*.dist-info/METADATA", "*/README*", "*/*.md", "*/*.rst", "*/*.txt"):
        roots.extend(sorted(site.glob(pattern)))
    seen: set[str] = set()
    paragraphs: list[str] = []
    for path in roots:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for block in text.split("\n\n"):
            block = " ".join(block.split())
            if len(block) >= min_chars and block not in seen and sum(c.isalpha() for c in block) > 0.6 * len(block):
                seen.add(block)
                paragraphs.append(block[:1500])
                if len(paragraphs) >= limit:
                    return paragraphs
    return paragraphs
