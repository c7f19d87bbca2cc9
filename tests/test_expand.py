"""kb.search.expand: everyday words in a question → the legal terms statutes use."""

from __future__ import annotations

import json

import pytest

from bench.common import RESULTS
from kb.search.expand import EVERYDAY_TO_LEGAL, expand_query, legal_terms

EVIDENCE = RESULTS / "expansion_evidence.json"


def test_an_everyday_word_brings_its_legal_terms() -> None:
    assert legal_terms("被公司辞退了怎么办") == ["解除", "劳动合同"]
    assert legal_terms("去法院起诉要多久") == ["人民法院"]


def test_longer_phrases_contribute_their_terms_first() -> None:
    assert "辞退" in EVERYDAY_TO_LEGAL and "偷" in EVERYDAY_TO_LEGAL  # the premise of this test
    assert legal_terms("偷东西被辞退") == ["解除", "劳动合同", "盗窃"]  # 辞退 (2 characters) before 偷 (1)


def test_the_longest_phrase_wins_over_the_shorter_one_inside_it() -> None:
    """A phrase inside a longer phrase that matched adds nothing of its own (老婆 inside 打老婆)."""
    table = {"老婆": "妻子 夫妻", "打老婆": "家庭暴力", "老公": "丈夫 夫妻"}
    assert legal_terms("他经常打老婆怎么办", table) == ["家庭暴力"]
    assert legal_terms("老公打老婆", table) == ["家庭暴力", "丈夫", "夫妻"]  # no 妻子


def test_terms_are_not_repeated() -> None:
    table = {"老公": "丈夫 夫妻", "老婆": "妻子 夫妻", "离婚": "离婚 婚姻"}
    terms = legal_terms("老公和老婆离婚", table)  # 夫妻 comes from 老公 and 老婆 alike
    assert len(terms) == len(set(terms))
    assert set(terms) == {"丈夫", "妻子", "夫妻", "离婚", "婚姻"}


def test_a_phrase_said_twice_counts_once() -> None:
    assert legal_terms("法院，法院！") == ["人民法院"]


@pytest.mark.parametrize("question", ["信访事项多长时间办结", "民法典第一千二百六十条", "", "The quick brown fox"])
def test_a_question_without_everyday_words_is_unchanged(question: str) -> None:
    assert not any(phrase in question for phrase in EVERYDAY_TO_LEGAL)  # the premise of this test
    assert legal_terms(question) == []
    assert expand_query(question) == question


def test_expand_query_appends_the_terms_after_the_question() -> None:
    question = "偷东西被公司辞退"
    expanded = expand_query(question)
    assert expanded.startswith(question + " ")
    added = expanded[len(question) + 1:].split(" ")
    assert added == ["解除", "劳动合同", "盗窃"]
    assert expanded.count(question) == 1


def test_every_mapping_is_well_formed() -> None:
    """Legal terms are single words separated by spaces, and no everyday phrase is empty."""
    for phrase, terms in EVERYDAY_TO_LEGAL.items():
        assert phrase.strip() == phrase and phrase
        assert terms.split() and all(t.strip() for t in terms.split())
        assert len(set(terms.split())) == len(terms.split()), phrase


def test_every_entry_is_backed_by_the_recorded_evidence() -> None:
    """The list cannot drift from its evidence: each phrase and term is "supported" in the result of
    `python -m bench.expansion_evidence` (rerun it after changing either)."""
    evidence = json.loads(EVIDENCE.read_text(encoding="utf-8"))
    supported = evidence["supported"]
    for phrase, terms in EVERYDAY_TO_LEGAL.items():
        assert phrase in supported, f"{phrase} has no supporting evidence in {EVIDENCE.name}"
        missing = set(terms.split()) - set(supported[phrase].split())
        assert not missing, f"{phrase} → {' '.join(missing)} is not supported in {EVIDENCE.name}"
        for term in terms.split():
            assert evidence["entries"][phrase]["terms"][term]["supported_by"], (phrase, term)
