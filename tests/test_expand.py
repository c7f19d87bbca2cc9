"""kb.expand: everyday words in a question → the legal terms statutes use."""

from __future__ import annotations

import pytest

from kb.expand import EVERYDAY_TO_LEGAL, expand_query, legal_terms


def test_an_everyday_word_brings_its_legal_terms() -> None:
    assert legal_terms("上访有用吗") == ["信访"]
    assert set(legal_terms("老公借的钱我要还吗")) == {"丈夫", "夫妻", "借款", "债务"}


def test_the_longest_phrase_wins_over_the_shorter_one_inside_it() -> None:
    """打老婆 is 家庭暴力; the 老婆 inside it must not also add 妻子."""
    assert "老婆" in EVERYDAY_TO_LEGAL and "打老婆" in EVERYDAY_TO_LEGAL  # the premise of this test
    assert legal_terms("他经常打老婆怎么办") == ["家庭暴力"]
    assert legal_terms("没钱请律师怎么办") == ["法律援助"]


def test_longer_phrases_contribute_their_terms_first() -> None:
    terms = legal_terms("老公打老婆")  # 打老婆 (3 characters) before 老公 (2)
    assert terms[0] == "家庭暴力"
    assert set(terms[1:]) == {"丈夫", "夫妻"}
    assert "妻子" not in terms


def test_terms_are_not_repeated() -> None:
    terms = legal_terms("老公和老婆离婚，老公不给孩子抚养费")  # 夫妻 comes from 老公, 老婆 and 离婚 alike
    assert len(terms) == len(set(terms))
    assert {"丈夫", "妻子", "夫妻", "离婚", "婚姻", "子女", "未成年人"} == set(terms)


def test_a_phrase_said_twice_counts_once() -> None:
    assert legal_terms("警察，警察！") == ["公安机关"]


@pytest.mark.parametrize("question", ["信访事项多长时间办结", "民法典第一千二百六十条", "", "The quick brown fox"])
def test_a_question_without_everyday_words_is_unchanged(question: str) -> None:
    assert not any(phrase in question for phrase in EVERYDAY_TO_LEGAL)  # the premise of this test
    assert legal_terms(question) == []
    assert expand_query(question) == question


def test_expand_query_appends_the_terms_after_the_question() -> None:
    question = "商家卖假货怎么办"
    expanded = expand_query(question)
    assert expanded.startswith(question + " ")
    added = expanded[len(question) + 1:].split(" ")
    assert set(added) == {"经营者", "假冒", "欺诈"} and len(added) == 3
    assert expanded.count(question) == 1


def test_every_mapping_is_well_formed() -> None:
    """Legal terms are single words separated by spaces, and no everyday phrase is empty."""
    for phrase, terms in EVERYDAY_TO_LEGAL.items():
        assert phrase.strip() == phrase and phrase
        assert terms.split() and all(t.strip() for t in terms.split())
        assert len(set(terms.split())) == len(terms.split()), phrase
