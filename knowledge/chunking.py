"""Token-aware chunking with the embedding model's own tokenizer.

Text arrives as parsed sections (a page, a web page, a whole text file). Markdown headings
split a section into blocks and become the chunk's heading path; semchunk then splits each
block at the most meaningful boundary it can (blank lines, then lines, sentences, words)
so that no chunk exceeds the model's input limit, with a configurable token overlap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import semchunk

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Section:
    """A unit of parsed text with where it came from."""

    text: str
    page: int | None = None
    url: str = ""
    heading_path: tuple[str, ...] = ()


@dataclass
class ChunkDraft:
    text: str
    token_count: int
    page: int | None = None
    url: str = ""
    heading_path: list[str] = field(default_factory=list)


def _blocks(section: Section) -> Iterator[tuple[list[str], str]]:
    """(heading path, body) pairs; a heading line starts a new block."""
    path = list(section.heading_path)
    base = len(path)
    levels: list[int] = []
    body: list[str] = []
    in_fence = False
    for line in section.text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        if any(part.strip() for part in body):
            yield list(path), "\n".join(body)
        body = []
        level, title = len(match.group(1)), match.group(2).strip()
        while levels and levels[-1] >= level:
            levels.pop()
            path.pop()
        levels.append(level)
        path = path[: base + len(levels) - 1] + [title]
    if any(part.strip() for part in body):
        yield list(path), "\n".join(body)


def chunk_sections(
    sections: Iterable[Section],
    *,
    chunk_size: int,
    overlap: int,
    count_tokens: Callable[[str], int],
) -> Iterator[ChunkDraft]:
    """Chunks of at most `chunk_size` tokens (as counted by `count_tokens`), lazily."""
    if chunk_size < 8:
        raise ValueError("chunk_size must be at least 8 tokens")
    overlap = max(0, min(overlap, chunk_size // 2))
    for section in sections:
        for path, body in _blocks(section):
            pieces = semchunk.chunk(
                body, chunk_size=chunk_size, token_counter=count_tokens, overlap=overlap or None, memoize=False
            )
            for piece in pieces:
                text = piece.strip()
                if not text:
                    continue
                for part in _enforce_limit(text, chunk_size, count_tokens):
                    yield ChunkDraft(
                        text=part,
                        token_count=count_tokens(part),
                        page=section.page,
                        url=section.url,
                        heading_path=path,
                    )


def _enforce_limit(text: str, chunk_size: int, count_tokens: Callable[[str], int]) -> list[str]:
    # semchunk already keeps to the limit; this is the guarantee the model relies on, so a
    # pathological input (one 10,000-character "word") is still split rather than truncated.
    if count_tokens(text) <= chunk_size:
        return [text]
    half = len(text) // 2
    return _enforce_limit(text[:half], chunk_size, count_tokens) + _enforce_limit(text[half:], chunk_size, count_tokens)
