"""The correction match threshold holds on its labelled set: every near miss is refused and most
paraphrases match their own correction (the figures in bots/correction_selectors.py)."""

from __future__ import annotations

from bots.correction_selectors import match_threshold
from knowledge.embeddings import get_embedder
from tests.bots.correction_paraphrases import CASES

MODEL = "all-MiniLM-L6-v2"


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))  # the vectors are L2-normalised


def test_the_threshold_refuses_every_near_miss_and_matches_most_paraphrases():
    embedder = get_embedder(MODEL)
    threshold = match_threshold(MODEL)
    questions = [embedder.embed_query(question) for question, _paraphrases, _misses in CASES]
    found = wrong = total = 0
    for index, (_question, paraphrases, misses) in enumerate(CASES):
        for text in paraphrases:
            total += 1
            scores = [_cosine(embedder.embed_query(text), q) for q in questions]
            best = max(range(len(scores)), key=scores.__getitem__)
            if scores[best] >= threshold:
                found += best == index
                wrong += best != index
        for text in misses:
            vector = embedder.embed_query(text)
            wrong += max(_cosine(vector, q) for q in questions) >= threshold
    assert wrong == 0, "precision 1.00: no near miss or paraphrase gets another question's answer"
    assert found / total >= 0.75, f"recall {found / total:.2f}"
