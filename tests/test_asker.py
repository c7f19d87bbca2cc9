"""The ask sequence (kb/answers/asker.py) over the real corpus and model: a follow-up costs what the rate limit
charges for it at most, and the readings of a follow-up of a follow-up search each text once."""

from __future__ import annotations

from collections import Counter

import pytest

from kb.knowledge_base import KnowledgeBase
from kb.search.conversation import retrievals_for

pytestmark = pytest.mark.slow

FIRST = "信访事项多久办结？"
FOLLOW_UP = "那要是对处理意见不满意呢？"
THIRD = "要在多少天内提出？"


@pytest.fixture
def searched(corpus_kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Every text the retriever is asked to search, counted (the real retriever still answers)."""
    counts: Counter = Counter()
    retrieve = corpus_kb.retriever.retrieve

    def counting(query, top_k=5, filters=None, method=None):  # noqa: ANN001, ANN202
        counts[(query, filters)] += 1
        return retrieve(query, top_k, filters, method)

    monkeypatch.setattr(corpus_kb.retriever, "retrieve", counting)
    return counts


@pytest.mark.parametrize("history", [[], [FIRST], [FIRST, FOLLOW_UP]])
def test_a_question_costs_at_most_what_the_rate_limit_charges(corpus_kb: KnowledgeBase, searched: Counter,
                                                               history: list[str]) -> None:
    answer = corpus_kb.ask(THIRD, history=history)
    assert answer.question == THIRD
    assert sum(searched.values()) <= retrievals_for(history)
    assert max(searched.values()) == 1, "no text is searched twice with the same filters"


def test_a_follow_up_of_a_follow_up_reuses_the_searches_of_the_reading_before_it(
        corpus_kb: KnowledgeBase, searched: Counter) -> None:
    third = corpus_kb.ask(THIRD, history=[FIRST, FOLLOW_UP])
    assert third.follow_up_of == f"{FIRST} {FOLLOW_UP}", "read with both earlier questions"
    # Read apart, the second question's reading and the third's would take 6 searches each.
    assert sum(searched.values()) < 2 * retrievals_for([FIRST])
