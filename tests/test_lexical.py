"""kb.text.lexical.LexicalIndex against a naive BM25 written out here, plus its files on disk."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from kb.text.lexical import LexicalIndex
from kb.text.tokenize import tokenize

K1, B = 1.2, 0.75

TEXTS = [
    "信访事项应当自受理之日起60日内办结；情况复杂的，经批准可以适当延长办理期限。",
    "信访人对信访事项处理意见不服的，可以自收到书面答复之日起30日内请求复查。",
    "村民委员会负责本村道路的日常巡查，发现路面塌陷应当设置警示标志。",
    "冬季降雪后，乡人民政府应当组织人员清除主要道路积雪。道路积雪影响出行的，村民委员会应当协助。",
    "公民因经济困难没有委托代理人的，可以向法律援助机构申请法律援助。",
    "摊位费每个摊位每天不超过十元，残疾人经营者免收摊位费。",
]
QUERIES = [
    "信访事项多长时间办结",
    "道路积雪谁来清除",
    "村民委员会",
    "没钱请律师怎么申请法律援助",
    "摊位费",
    "信访 信访 信访",
    "红烧肉怎么做",
]


def naive_bm25(texts: list[str], query: str) -> list[float]:
    """BM25 by hand: for each document, the sum over the query's distinct words of
    idf × tf·(k1+1) / (tf + k1·(1 − b + b·len/avglen)), idf = ln(1 + (N − df + 0.5)/(df + 0.5))."""
    docs = [tokenize(text) for text in texts]
    n = len(docs)
    avg_length = sum(len(doc) for doc in docs) / n
    words: list[str] = []
    for word in tokenize(query):
        if word not in words:
            words.append(word)
    scores = []
    for doc in docs:
        score = 0.0
        for word in words:
            tf = doc.count(word)
            if tf == 0:
                continue
            df = sum(1 for other in docs if word in other)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(doc) / avg_length))
        scores.append(score)
    return scores


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(TEXTS)


@pytest.mark.parametrize("query", QUERIES)
def test_scores_agree_with_a_naive_bm25(index: LexicalIndex, query: str) -> None:
    scores = index.scores(query)
    assert scores.shape == (len(TEXTS),)
    np.testing.assert_allclose(scores, naive_bm25(TEXTS, query), rtol=1e-5, atol=1e-6)


def test_the_expected_document_ranks_first(index: LexicalIndex) -> None:
    assert int(np.argmax(index.scores("信访事项多长时间办结"))) == 0
    assert int(np.argmax(index.scores("道路积雪谁来清除"))) == 3
    assert int(np.argmax(index.scores("残疾人摊位费"))) == 5


def test_a_query_without_indexed_words_scores_zero(index: LexicalIndex) -> None:
    assert not index.scores("红烧肉怎么做").any()
    assert not index.scores("").any()
    assert index.query_terms("红烧肉") == []


def test_repeating_a_word_in_the_query_does_not_change_the_scores(index: LexicalIndex) -> None:
    np.testing.assert_array_equal(index.scores("信访 信访 信访"), index.scores("信访"))


def test_rarer_words_weigh_more() -> None:
    """Two one-word documents of equal length: the word in fewer documents gets the larger idf."""
    lexical = LexicalIndex.build(["信访 信访", "信访 复议", "信访 诉讼"])
    common, rare = lexical.scores("信访"), lexical.scores("复议")
    assert rare[1] > common[1] > 0
    assert rare[0] == rare[2] == 0


def test_query_terms_are_the_indexed_words_unique_in_order(index: LexicalIndex) -> None:
    # 红烧肉 occurs in no text, 请问 and 和 are filler; 信访事项 (twice) and 办结 are in TEXTS[0].
    assert index.query_terms("请问红烧肉和信访事项，信访事项办结") == ["信访", "事项", "办结"]


def test_save_and_load_round_trip(index: LexicalIndex, tmp_path: Path) -> None:
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.n_docs == index.n_docs == len(TEXTS)
    assert loaded.vocab == index.vocab
    for query in QUERIES:
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))
        assert loaded.query_terms(query) == index.query_terms(query)


@pytest.mark.parametrize("damage", ["docs shorter than weights", "term pointers short", "last pointer wrong"])
def test_load_refuses_arrays_that_disagree(index: LexicalIndex, tmp_path: Path, damage: str) -> None:
    index.save(tmp_path)
    if damage == "docs shorter than weights":
        np.save(tmp_path / "lexical_docs.npy", index.docs[:-1])
    elif damage == "term pointers short":
        np.save(tmp_path / "lexical_term_ptr.npy", index.term_ptr[:-1])
    else:
        ptr = index.term_ptr.copy()
        ptr[-1] -= 1
        np.save(tmp_path / "lexical_term_ptr.npy", ptr)
    with pytest.raises(ValueError):
        LexicalIndex.load(tmp_path)
