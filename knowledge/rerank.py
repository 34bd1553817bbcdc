"""Re-ranking of hybrid search's candidates before the top k reach the prompt. Pure: no DB, no model.

Reciprocal-rank fusion (60 + rank) flattens the two retrievers' opinions, and the full-text half
matches any word of the query: a chunk that shares a common word with the query and is the vector
half's 10th outranks the vector half's 1st that shares none. The re-ranker orders the candidates by

    similarity                                   the cosine similarity (absolute, the main signal)
  + heading  * share of the query's content words in the passage's heading path and document title
  + coverage * share of the query's content words in the passage's text

Measured on benchmarks/data/quality.json (`make bench BENCH_ARGS="--only quality"`), the same 60
candidates gated the same way, both corpora, re-ranked vs fused order:
  hit@1 0.83 vs 0.74, hit@5 0.97 vs 0.88, MRR 0.88 vs 0.79, citation accuracy 0.66 vs 0.61
(calibration half MRR 0.89 vs 0.77, held-out half 0.88 vs 0.81). The weights were chosen on the
calibration half: similarity alone already does most of it; heading 0.1 and coverage 0.2 add
about 0.03 MRR on each corpus. Most of the overall gain needs the larger candidate pool (see
answer_retrieval.CANDIDATES): the chunks the vector half ranks first are often not in RRF's top 15.

Tried and left out because the benchmark showed no gain: a bonus for a high full-text rank, a
bonus for documents with several candidates, a penalty for very short chunks, and at most two
passages per document in the top k (document-level diversity). Not tried:
- a cross-encoder: a search of the PyPI and npm package lists found none that ships its weights
  inside the package (the re-ranker packages found download them from a model hub at run time,
  which we forbid);
- MMR over vectors and neighbouring-chunk expansion: both need another round trip (the
  candidates' vectors, the neighbours' text), and the answer's budget has no room for one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .types import RetrievedPassage


@dataclass(frozen=True)
class RerankWeights:
    heading: float = 0.10
    coverage: float = 0.20


DEFAULT_WEIGHTS = RerankWeights()

_WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about a topic; headings are short, so one of these would count a lot.
_STOPWORDS = frozenset(
    """a an and are as at be but by can do does for from get got has have how i if in into is it its
    me my of on or our so that the their them then there these this to too up was we what when where
    which who why will with would you your not no any all out off own than very just only about
    make made use used want need""".split()
)


def query_terms(text: str) -> set[str]:
    """Lower-cased content words, with a plural 's' dropped (a stemmer's worth, for short headings)."""
    words = set()
    for word in _WORD.findall(text.lower()):
        if len(word) < 3 or word in _STOPWORDS:
            continue
        words.add(word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word)
    return words


def rerank(
    passages: Sequence[RetrievedPassage], *, query: str, weights: RerankWeights = DEFAULT_WEIGHTS
) -> list[tuple[RetrievedPassage, float]]:
    """The passages with their re-rank scores, best first (ties keep the given order)."""
    terms = query_terms(query)
    scored = []
    for position, passage in enumerate(passages):
        score = passage.similarity or 0.0
        if terms and weights.heading:
            heading = query_terms(" ".join([*passage.heading_path, _title_words(passage.document_title)]))
            score += weights.heading * len(terms & heading) / len(terms)
        if terms and weights.coverage:
            # A substring test, not a tokenisation: ~1 µs per term and passage, and "index"
            # finding "indexes" is what we want.
            lowered = passage.text.lower()
            score += weights.coverage * sum(term in lowered for term in terms) / len(terms)
        scored.append((score, position, passage))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [(passage, score) for score, _position, passage in scored]


def _title_words(title: str) -> str:
    # "troubleshooting-buds.md" -> "troubleshooting buds"
    stem = title.rsplit(".", 1)[0] if "." in title[-6:] else title
    return stem.replace("-", " ").replace("_", " ")
