"""The quality benchmark's labelled set: big enough, and every expected document exists."""

from __future__ import annotations

from benchmarks.quality import cases_of, load_set
from knowledge.management.commands.bootstrap_demo_knowledge import demo_sources


def test_the_labelled_set_has_enough_answerable_and_unanswerable_questions_per_half():
    cases = cases_of(load_set())
    answerable = [c for c in cases if c.doc]
    unanswerable = [c for c in cases if c.doc is None]
    assert len(answerable) >= 60 and len(unanswerable) >= 15
    for half in ("calibrate", "holdout"):
        assert sum(c.split == half for c in answerable) >= 30
        assert sum(c.split == half for c in unanswerable) >= 8
    assert len({(c.corpus, c.question) for c in cases}) == len(cases)  # no question twice in a corpus


def test_every_expected_document_is_in_its_corpus():
    data = load_set()
    titles = {
        "helpcentre": {path.name for path in demo_sources()},
        "sqlite": set(data["corpora"]["sqlite"]["files"]),
    }
    assert set(titles) == set(data["corpora"])
    for case in cases_of(data):
        for title in filter(None, (case.doc, *case.also)):
            assert title in titles[case.corpus], (case.corpus, case.question, title)
