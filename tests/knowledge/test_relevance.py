"""The relevance gate and the re-ranker, on hand-built passages (pure: no database, no model)."""

from __future__ import annotations

import json

from knowledge.answer_retrieval import decide
from knowledge.relevance import DEFAULT_THRESHOLDS, THRESHOLDS, gate_passages, thresholds_for
from knowledge.rerank import query_terms, rerank
from knowledge.types import RetrievedPassage

MINILM = "all-MiniLM-L6-v2"


def passage(chunk_id: int, similarity: float | None, *, text_rank: int | None = None, **fields) -> RetrievedPassage:
    defaults = {
        "document_id": chunk_id,
        "knowledge_base_id": 1,
        "text": f"Passage {chunk_id} about something.",
        "score": 1 / (60 + chunk_id),
        "document_title": f"doc-{chunk_id}.md",
        "vector_rank": chunk_id,
    }
    return RetrievedPassage(chunk_id=chunk_id, similarity=similarity, text_rank=text_rank, **{**defaults, **fields})


def test_a_passage_similar_enough_to_the_question_is_kept_and_says_why():
    [verdict] = gate_passages([passage(1, 0.62)], embedding_model=MINILM)
    assert verdict.relevant
    assert verdict.reason == "similarity 0.62 >= 0.34"
    assert verdict.signals["similarity"] == 0.62 and verdict.signals["fused_rank"] == 1


def test_a_dissimilar_passage_without_a_keyword_match_is_dropped():
    [verdict] = gate_passages([passage(1, 0.18)], embedding_model=MINILM)
    assert not verdict.relevant
    assert verdict.reason == "similarity 0.18 < 0.34 and no keyword match"
    assert verdict.signals["text_rank"] is None


def test_a_keyword_match_rescues_a_moderately_similar_passage_but_not_a_dissimilar_one():
    moderate, dissimilar = gate_passages(
        [passage(1, 0.31, text_rank=1), passage(2, 0.20, text_rank=2)], embedding_model=MINILM
    )
    assert moderate.relevant and "keyword match (rank 1)" in moderate.reason
    assert not dissimilar.relevant and "despite keyword match" in dissimilar.reason


def test_a_keyword_match_ranked_low_by_the_full_text_half_does_not_count():
    [verdict] = gate_passages([passage(1, 0.31, text_rank=40)], embedding_model=MINILM)
    assert not verdict.relevant
    assert "keyword match too weak (rank 40 > 3)" in verdict.reason


def test_a_passage_far_behind_the_best_one_is_dropped_even_above_the_threshold():
    best, far = gate_passages([passage(1, 0.70), passage(2, 0.45)], embedding_model=MINILM)
    assert best.relevant
    assert not far.relevant and "below the best passage" in far.reason
    assert far.signals["gap"] == 0.25


def test_a_verdict_serialises_for_the_trace_with_its_reason_and_scores():
    [verdict] = gate_passages([passage(7, 0.18, text_rank=30, document_title="refunds.md")], embedding_model=MINILM)
    trace = json.loads(json.dumps(verdict.as_trace()))
    assert trace["chunk_id"] == 7 and trace["document_title"] == "refunds.md"
    assert trace["relevant"] is False and trace["reason"].startswith("similarity 0.18 < 0.34")
    assert trace["signals"]["text_rank"] == 30 and trace["signals"]["similarity"] == 0.18


def test_a_passage_without_a_similarity_is_never_relevant():
    [verdict] = gate_passages([passage(1, None, text_rank=1)], embedding_model=MINILM)
    assert not verdict.relevant and verdict.reason == "no similarity score"


def test_an_unknown_embedding_model_gets_the_lenient_default_thresholds():
    assert thresholds_for("some-new-model") == DEFAULT_THRESHOLDS
    assert thresholds_for(MINILM) == THRESHOLDS[MINILM]
    [verdict] = gate_passages([passage(1, 0.31)], embedding_model="some-new-model")
    assert verdict.relevant and verdict.reason == f"similarity 0.31 >= {DEFAULT_THRESHOLDS.strong:.2f}"
    [strict] = gate_passages([passage(1, 0.31)], embedding_model=MINILM)
    assert not strict.relevant


def test_the_reranker_puts_the_most_similar_passage_first_whatever_the_fused_order():
    fused = [passage(1, 0.30, text_rank=1), passage(2, 0.55), passage(3, 0.42, text_rank=2)]
    assert [p.chunk_id for p, _score in rerank(fused, query="unrelated words")] == [2, 3, 1]


def test_the_reranker_prefers_the_passage_whose_heading_names_the_question_topic():
    question = "How long does express delivery take?"
    shipping = passage(1, 0.40, heading_path=["Shipping", "Express delivery"], document_title="shipping.md")
    refunds = passage(2, 0.42, heading_path=["Refunds"], document_title="refunds.md")
    ranked = rerank([refunds, shipping], query=question)
    assert [p.chunk_id for p, _score in ranked] == [1, 2]


def test_query_terms_drop_stopwords_and_plural_s():
    assert query_terms("How do I return my headphones?") == {"return", "headphone"}


def test_deciding_keeps_at_most_k_relevant_passages_and_refuses_when_none_is():
    candidates = [passage(i, 0.60 - i / 100) for i in range(1, 9)]
    decision = decide(candidates, query="anything", k=5, embedding_model=MINILM)
    assert [p.chunk_id for p in decision.kept] == [1, 2, 3, 4, 5]
    assert len(decision.verdicts) == 8 and all("rerank_score" in v.signals for v in decision.verdicts)

    unrelated = [passage(i, 0.15) for i in range(1, 6)]
    refusal = decide(unrelated, query="capital of Australia", k=5, embedding_model=MINILM)
    assert refusal.refused and refusal.kept == []
    assert [v.relevant for v in refusal.verdicts] == [False] * 5


def test_gating_off_keeps_the_top_k_whatever_their_scores():
    unrelated = [passage(i, 0.05) for i in range(1, 4)]
    decision = decide(unrelated, query="capital of Australia", k=2, embedding_model=MINILM, gate=False)
    assert [p.chunk_id for p in decision.kept] == [1, 2]
    assert {v.reason for v in decision.verdicts} == {"gating off"}
