"""A search statement's rows, read by column name: the scope its snapshot saw, and the passages
ranked by reciprocal rank fusion."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..types import RetrievedPassage

RRF_K = 60
SNIPPET_CHARS = 240


@dataclass
class SearchResult:
    passages: list[RetrievedPassage]
    plan: str = ""
    # knowledge_bases_for_search(scope_kb_ids) as of the statement's snapshot: the caller compares
    # it with the scope it planned with (a model changed, a knowledge base went or grew)
    knowledge_bases: list[tuple[int, str, int]] = field(default_factory=list)


def snippet_for(text: str, query: str, width: int = SNIPPET_CHARS) -> str:
    """A window of the chunk around the first query word it contains, for citations."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    start = 0
    for word in sorted(set(re.findall(r"\w{3,}", query.lower())), key=len, reverse=True):
        index = flat.lower().find(word)
        if index >= 0:
            start = max(0, index - width // 4)
            break
    window = flat[start : start + width]
    return ("…" if start else "") + window + ("…" if start + width < len(flat) else "")


def rows_by_name(cursor: Any) -> list[dict[str, Any]]:
    """The cursor's rows as {column name: value}."""
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def scope_seen(rows: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    """The knowledge bases (id, embedding model, visible chunks) as the statement saw them: every
    row repeats them (kb_ids, kb_models, kb_available), the first is read."""
    if not rows:
        return []
    first = rows[0]
    ids, models, sizes = first["kb_ids"] or [], first["kb_models"] or [], first["kb_available"] or []
    return [(kb_id, model, int(size)) for kb_id, model, size in zip(ids, models, sizes, strict=True)]


def passages_from(rows: list[dict[str, Any]], *, query: str, k: int, min_score: float | None) -> list[RetrievedPassage]:
    """The k best passages among a search statement's rows, by fused rank (ties: the more similar,
    then the lower id); rows less similar than `min_score` are left out."""
    scored: list[tuple[float, float, int, dict[str, Any]]] = []
    for row in rows:
        if row["id"] is None:  # the LEFT JOIN's row when nothing matched
            continue
        similarity = float(row["similarity"])
        if min_score is not None and similarity < min_score:
            continue
        score = sum(1.0 / (RRF_K + rank) for rank in (row["v_rank"], row["t_rank"]) if rank is not None)
        scored.append((score, similarity, row["id"], row))
    scored.sort(key=lambda item: (-item[0], -item[1], item[2]))
    return [
        RetrievedPassage(
            chunk_id=row["id"],
            document_id=row["document_id"],
            knowledge_base_id=row["knowledge_base_id"],
            text=row["text"],
            score=score,
            document_title=row["title"],
            page=row["page"],
            url=(row["source_url"] or row["url"] or None),
            heading_path=_heading_path(row["heading_path"]),
            snippet=snippet_for(row["text"], query),  # only for the k kept: it scans the chunk's text
            similarity=similarity,
            vector_rank=row["v_rank"],
            text_rank=row["t_rank"],
        )
        for score, similarity, _chunk_id, row in scored[:k]
    ]


def _heading_path(value: Any) -> list[str]:
    return list(json.loads(value) if isinstance(value, str) else value or [])
