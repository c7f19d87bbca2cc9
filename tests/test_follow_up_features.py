"""Where a follow-up's candidate lies from the previous answer (kb/search/conversation.py follow_up_features):
"answer_article" (the same article), "next_article" (one article away), "near_article" (two or three away), each
one-hot, and none of them for an article farther away, in another document or without an article number. The
learnt ranker's weights are tied to these boundaries, so a change to any of them must fail here. No model: the
hits and readings are built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kb.schema import Hit
from kb.search.conversation import FOLLOW_UP_FEATURES, READINGS, Readings, follow_up_features
from kb.search.retrieve import Retrieval

ANSWER_ARTICLE = 10
PLACE = ("answer_article", "next_article", "near_article")


def article(article_no: int | None, doc_id: str = "law", part: int = 0) -> Hit:
    """A passage of article `article_no` of `doc_id` (`part`: another passage of the same article)."""
    return Hit(chunk_id=f"{doc_id}-{article_no}-{part}", doc_id=doc_id, doc_title=f"{doc_id}条例", doc_kind="law",
               doc_date=None, section="第一章 总则", article=None if article_no is None else f"第{article_no}条",
               article_no=article_no, citation=f"《{doc_id}条例》第{article_no}条", text="", score=0.0, start=0,
               end=0)


def no_vectors(chunk_ids: object) -> np.ndarray:
    """Passage vectors of a store that holds none of the candidates."""
    return np.zeros((len(chunk_ids), 2))  # type: ignore[arg-type]


def places(candidate: Hit) -> tuple[float, float, float]:
    """The (answer_article, next_article, near_article) columns of `candidate`'s row, the previous answer being
    article ANSWER_ARTICLE of "law"."""
    answer = article(ANSWER_ARTICLE)
    lists = {reading: Retrieval([], 0.8) for reading in READINGS}
    lists["in_document"] = Retrieval([candidate], 0.8)
    hits, matrix = follow_up_features("那要是不满意呢？", "信访事项多久办结？", Readings(answer, lists), 0.5, (),
                                      lambda term: 1.0, no_vectors)
    assert [h.chunk_id for h in hits] == [candidate.chunk_id]
    assert matrix.shape == (1, len(FOLLOW_UP_FEATURES))
    row = matrix[0]
    return tuple(float(row[FOLLOW_UP_FEATURES.index(name)]) for name in PLACE)  # type: ignore[return-value]


@pytest.mark.parametrize("candidate, expected", [
    (article(ANSWER_ARTICLE), (1, 0, 0)),
    (article(ANSWER_ARTICLE, part=1), (1, 0, 0)),
    (article(ANSWER_ARTICLE + 1), (0, 1, 0)),
    (article(ANSWER_ARTICLE - 1), (0, 1, 0)),
    (article(ANSWER_ARTICLE + 2), (0, 0, 1)),
    (article(ANSWER_ARTICLE - 2), (0, 0, 1)),
    (article(ANSWER_ARTICLE + 3), (0, 0, 1)),
    (article(ANSWER_ARTICLE - 3), (0, 0, 1)),
    (article(ANSWER_ARTICLE + 4), (0, 0, 0)),
    (article(ANSWER_ARTICLE - 4), (0, 0, 0)),
    (article(ANSWER_ARTICLE + 40), (0, 0, 0)),
    (article(ANSWER_ARTICLE, doc_id="other"), (0, 0, 0)),
    (article(ANSWER_ARTICLE + 1, doc_id="other"), (0, 0, 0)),
    (article(ANSWER_ARTICLE + 2, doc_id="other"), (0, 0, 0)),
    (article(None), (0, 0, 0)),
], ids=["distance 0", "distance 0, another passage", "distance 1", "distance 1 before", "distance 2",
        "distance 2 before", "distance 3", "distance 3 before", "distance 4", "distance 4 before", "distance 40",
        "other document, same number", "other document, next number", "other document, near number",
        "same document, no article"])
def test_the_place_beside_the_previous_answer_is_one_hot(candidate: Hit, expected: tuple[int, int, int]) -> None:
    assert places(candidate) == expected


def test_all_candidates_at_once_get_the_same_places() -> None:
    """Read in one matrix, as the ranker reads them, each candidate keeps its own place."""
    answer = article(ANSWER_ARTICLE)
    candidates = [article(ANSWER_ARTICLE + d) for d in range(5)] + [article(ANSWER_ARTICLE, doc_id="other")]
    lists = {reading: Retrieval([], 0.8) for reading in READINGS}
    lists["together"] = Retrieval(candidates, 0.8)
    hits, matrix = follow_up_features("那要是不满意呢？", "信访事项多久办结？", Readings(answer, lists), 0.5, (),
                                      lambda term: 1.0, no_vectors)
    assert [h.chunk_id for h in hits] == [c.chunk_id for c in candidates]
    columns = matrix[:, [FOLLOW_UP_FEATURES.index(name) for name in PLACE]]
    np.testing.assert_array_equal(columns, [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
