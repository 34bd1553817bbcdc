"""The offline extractive answerer reads like an answer: whole sentences chosen for the question,
each cited to its passage, never markup or fragments, and "I don't know" when nothing is relevant."""

from __future__ import annotations

import re

from conversations.llm.offline import NOTICE, compose_answer, sentences_of
from knowledge.types import RetrievedPassage

SHIPPING = """# Shipping

## Delivery times

| Method | Days | Price |
|---|---|---|
| Standard | 3-5 | free |
| Express | 1 | €9.95 |

Standard delivery takes **3 to 5 working days** within the European Union. Express orders placed
before 14:00 arrive the next working day.

---

- Tracking
- We email a tracking link as soon as the parcel leaves our warehouse.
"""
RETURNS = """ed products can be returned within 30 days of delivery. You can return any product within
**30 days** of delivery, as long as it is complete. Pack the product in its original box and drop it
at a [pick-up point](https://example.com/points). Refunds are paid back to the card you used
within five working"""
OFFICE = "Our office is in Lisbon. The coffee machine is on the third floor. Visitors sign in at the desk."


def passage(number: int, text: str) -> RetrievedPassage:
    return RetrievedPassage(
        chunk_id=100 + number,
        document_id=number,
        knowledge_base_id=1,
        text=text,
        score=1 / number,
        document_title=f"doc{number}.md",
    )


def cited_sentences(answer: str) -> list[tuple[str, int]]:
    body = answer.removesuffix(NOTICE).strip()
    return [(text.strip(), int(n)) for text, n in re.findall(r"(.+?) \[(\d+)\]", body)]


def test_sentences_leave_out_headings_tables_rulers_bullets_and_cut_off_fragments():
    found = sentences_of(SHIPPING) + sentences_of(RETURNS)
    assert "Standard delivery takes 3 to 5 working days within the European Union." in found
    assert "We email a tracking link as soon as the parcel leaves our warehouse." in found
    assert "Pack the product in its original box and drop it at a pick-up point." in found
    assert not any(mark in s for s in found for mark in ("|", "#", "---", "**", "](")), found
    assert "Tracking" not in found  # a bullet of one word is no sentence
    assert not any(s.startswith("ed products") for s in found)  # cut at the chunk's start
    assert not any(s.endswith("five working") for s in found)  # cut at the chunk's end


def test_the_answer_quotes_the_sentences_the_question_asks_about_each_cited_to_its_passage():
    answer = compose_answer("How long does standard delivery take?", [passage(1, SHIPPING), passage(2, OFFICE)])
    cited = cited_sentences(answer)
    assert cited[0] == ("Standard delivery takes 3 to 5 working days within the European Union.", 1)
    assert all(n == 1 for _sentence, n in cited)  # nothing about Lisbon's coffee
    assert answer.endswith(NOTICE)


def test_sentences_from_several_passages_come_in_passage_order_with_their_own_numbers():
    answer = compose_answer(
        "Can I return a product, and how long until the refund is paid back to my card?",
        [passage(1, RETURNS), passage(2, SHIPPING)],
    )
    cited = cited_sentences(answer)
    assert ("You can return any product within 30 days of delivery, as long as it is complete.", 1) in cited
    assert ("Refunds are paid back to the card you used within five working", 1) not in cited
    assert [n for _s, n in cited] == sorted(n for _s, n in cited)
    assert len(cited) <= 3


def test_it_says_the_bots_dont_know_message_when_nothing_is_relevant_or_nothing_is_a_sentence():
    sorry = "Sorry, I don't know. You can reach our team at help@example.com."
    assert compose_answer("What is the capital of Australia?", [], sorry) == sorry
    only_markup = "# Prices\n\n| Plan | Price |\n|---|---|\n| Care+ | €4 |\n\n---\n"
    assert compose_answer("How much is Care+?", [passage(1, only_markup)], sorry) == sorry
