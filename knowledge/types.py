"""The retrieval contract the answer pipeline builds against.

`knowledge.selectors.chunk_search(*, tenant, knowledge_base_ids, query, k=5, min_score=None)`
returns `list[RetrievedPassage]`, best first, at most k, restricted to the given tenant's
knowledge bases (and to the current tenant context).

`score` is the reciprocal-rank-fusion score (sum of 1/(60 + rank) over the vector and full-text
retrievers). `min_score` filters on `similarity`, the cosine similarity in [-1, 1], because a
fused rank score says nothing absolute about relevance.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetrievedPassage:
    chunk_id: int
    document_id: int
    knowledge_base_id: int
    text: str
    score: float  # fused score, higher is better
    document_title: str
    page: int | None = None
    url: str | None = None
    heading_path: list[str] = field(default_factory=list)
    snippet: str = ""
    # Optional additions (issue 3): cosine similarity of the chunk to the query (what min_score
    # filters on), and the ranks it had in each retriever (None when that retriever missed it).
    similarity: float | None = None
    vector_rank: int | None = None
    text_rank: int | None = None
    # Set when the passage is a correction the support team wrote (bots.Correction), not a chunk:
    # it is then put first, and the offline answerer gives its text as the answer.
    correction_id: int | None = None
