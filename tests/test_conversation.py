"""Reading a follow-up (kb/search/conversation.py) without the model: which earlier question, which words point back,
what the follow-up ranker is told about each candidate, and what the gate is told about the question."""

from __future__ import annotations

import numpy as np
import pytest

from kb.schema import Hit
from kb.search.conversation import (
    FOLLOW_UP_FEATURES,
    GATE_FEATURES,
    READINGS,
    REFERS_BACK_RE,
    FollowUpCandidates,
    Readings,
    follow_up_features,
    follow_up_gate,
    follow_up_ranker,
    gate_features,
    previous_question,
)
from kb.search.retrieve import Retrieval


def hit(article_no: int | None, doc_id: str = "law", text: str = "") -> Hit:
    return Hit(chunk_id=f"{doc_id}-{article_no}", doc_id=doc_id, doc_title="条例", doc_kind="law", doc_date=None,
               section="", article=f"第{article_no}条", article_no=article_no, citation=f"《条例》第{article_no}条",
               text=text, score=0.0, start=0, end=0)


def test_the_previous_question_is_the_last_non_empty_one() -> None:
    assert previous_question(["信访事项多久办结？", "  ", ""]) == "信访事项多久办结？"
    assert previous_question(["甲？", "乙？"]) == "乙？"
    assert previous_question([]) == "" and previous_question("只有一个问题？") == "只有一个问题？"


def test_words_pointing_back_into_the_conversation_are_recognised() -> None:
    for elliptical in ("他不遵守怎么办？", "那要是不满意呢？", "这钱村里要公开吗？", "对方不愿意调呢", "单位这么干会被罚吗？"):
        assert REFERS_BACK_RE.search(elliptical), elliptical
    for full in ("村委会选举时在外地打工回不去，能委托家里人投票吗？", "侵害他人名誉要承担什么责任？", "老师可以体罚学生吗？"):
        assert not REFERS_BACK_RE.search(full), full


def readings(answer: Hit, vectors: dict[str, list[float]] | None = None, **lists: list[Hit]) -> Readings:
    """Readings whose texts have the given question `vectors` (by reading; None where not given)."""
    dense = {"alone": 0.90, "in_document": 0.85}
    vectors = vectors or {}
    return Readings(answer, {r: Retrieval(lists.get(r, []), dense.get(r, 0.8),
                                          question_vector=np.array(vectors[r]) if r in vectors else None)
                             for r in READINGS})


def no_vectors(chunk_ids: object) -> np.ndarray:
    return np.zeros((len(chunk_ids), 2))  # type: ignore[arg-type]


def test_each_candidate_is_described_by_its_ranks_its_place_and_what_it_holds() -> None:
    answer = hit(35, text="信访人对信访处理意见不服的，可以自收到书面答复之日起30日内请求复查。")
    next_one = hit(36, text="复查机构应当自收到复查请求之日起30日内提出复查意见。")
    far = hit(50, text="本条例自公布之日起施行。")
    other = hit(7, "other", text="当事人可以向人民法院起诉。")
    found = readings(answer, {"alone": [1.0, 0.0], "previous": [0.0, 1.0]}, alone=[other, next_one],
                     in_document=[next_one, far], together=[answer, next_one], previous=[answer])
    passage_vectors = {"other-7": [1.0, 0.0], "law-36": [0.6, 0.8], "law-50": [0.0, 1.0], "law-35": [0.8, 0.6]}
    hits, matrix = follow_up_features("复查要多长时间？", "信访处理意见不服怎么办？", found, 0.7, (), lambda t: 1.0,
                                      lambda ids: np.array([passage_vectors[i] for i in ids]))
    assert [h.chunk_id for h in hits] == ["other-7", "law-36", "law-50", "law-35"]  # each once, in reading order
    assert matrix.shape == (4, len(FOLLOW_UP_FEATURES)) and np.isfinite(matrix).all()
    column = {name: dict(zip((h.chunk_id for h in hits), values)) for name, values in zip(FOLLOW_UP_FEATURES, matrix.T)}
    assert column["alone_rank"] == {"other-7": 1.0, "law-36": 1 / np.log2(3), "law-50": 0.0, "law-35": 0.0}
    assert column["in_document_rank"]["law-36"] == 1.0 and column["together_rank"]["law-35"] == 1.0
    assert column["answer_article"] == {"other-7": 0, "law-36": 0, "law-50": 0, "law-35": 1}
    assert column["next_article"]["law-36"] == 1 and column["near_article"]["law-50"] == 0
    assert column["in_answer_document"]["other-7"] == 0 and column["in_answer_document"]["law-50"] == 1
    # Only a passage in another document carries how the question fares on its own.
    assert np.isclose(column["elsewhere_closer"]["other-7"], 0.05) and column["elsewhere_closer"]["law-36"] == 0
    assert column["elsewhere_sure"] == {"other-7": 0.7, "law-36": 0, "law-50": 0, "law-35": 0}
    assert column["elsewhere_points_back"]["other-7"] == 0  # 「复查要多长时间？」 points nowhere back
    # 多长时间 asks for a period: 36 and 35 hold one (30日内), 50 does not.
    assert column["period_asked_and_present"] == {"other-7": 0, "law-36": 1, "law-50": 0, "law-35": 1}
    assert column["period_asked_and_absent"]["law-50"] == 1
    assert column["answer_article_holds_asked"]["law-35"] == 1
    assert column["question_coverage"]["law-36"] > column["question_coverage"]["law-50"]
    # Closeness in meaning against the closest candidate's: to the question, to the previous question; the
    # together reading has no vector here, so it tells nothing.
    expected_gaps = {"alone_cosine_gap": {"other-7": 0.0, "law-36": -0.4, "law-50": -1.0, "law-35": -0.2},
                     "previous_cosine_gap": {"other-7": -1.0, "law-36": -0.2, "law-50": 0.0, "law-35": -0.4},
                     "together_anywhere_cosine_gap": {"other-7": 0.0, "law-36": 0.0, "law-50": 0.0, "law-35": 0.0}}
    for name, gaps in expected_gaps.items():
        assert column[name] == pytest.approx(gaps), name


def test_a_reading_with_no_candidates_describes_none() -> None:
    hits, matrix = follow_up_features("那呢？", "问？", readings(hit(1)), 0.5, (), lambda t: 1.0, no_vectors)
    assert hits == [] and matrix.shape == (0, len(FOLLOW_UP_FEATURES))


def test_the_shipped_follow_up_ranker_matches_the_features_and_says_how_it_was_made() -> None:
    ranker = follow_up_ranker()
    assert ranker is not None and np.isfinite(ranker.weights).all()
    assert ranker.meta["script"] == "python -m bench.followup --fit"
    assert ranker.meta["trained_on"] == "bench/data/followup_fit.jsonl"


def test_the_gate_is_told_whether_the_question_points_back_and_names_things_of_its_own() -> None:
    answer = hit(34, text="信访事项应当自受理之日起60日内办结。")
    other = hit(3, "other", text="护照的申请、受理和审批。")
    found_lists = readings(answer, alone=[other], in_document=[answer], previous=[answer],
                           together_anywhere=[answer])
    documents = {"law": "信访事项应当自受理之日起60日内办结；情况复杂的，可以适当延长办理期限。", "other": ""}

    def features(question: str, shares: list[float]) -> dict[str, float]:
        found = FollowUpCandidates("信访事项多久办结？", found_lists, [other, answer], np.zeros((2, 0)), 0.3, ())
        row = gate_features(question, found_lists.lists["alone"], found, np.array(shares), lambda q, r: 0.9,
                            lambda t: 1.0, documents.__getitem__)
        assert row.shape == (len(GATE_FEATURES),) and np.isfinite(row).all()
        return dict(zip(GATE_FEATURES, row))

    elliptical = features("那能延长吗？", [0.2, 0.8])
    assert elliptical["points_back"] == 1 and elliptical["new_nouns"] == 0
    assert elliptical["ranker_keeps_own"] == 0 and elliptical["ranker_in_answer_document"] == 1
    assert elliptical["sure_alone"] == 0.3 and elliptical["sure_together"] == 0.9
    assert np.isclose(elliptical["closer"], 0.05) and elliptical["alone_in_answer_document"] == 0
    own = features("护照怎么办理？", [0.9, 0.1])
    assert own["points_back"] == 0 and own["new_nouns"] > 0  # 护照 is in neither the question nor the law
    assert own["ranker_keeps_own"] == 1 and own["ranker_share"] == 0.9


def test_the_shipped_gate_matches_the_features_and_says_how_it_was_made() -> None:
    gate = follow_up_gate()
    assert gate is not None and np.isfinite(gate.weights).all() and np.isfinite(gate.meta["threshold"])
    assert gate.meta["script"] == "python -m bench.followup_gate"
    assert gate.meta["trained_on"] == ["bench/data/followup_fit.jsonl", "bench/data/switch_fit.jsonl"]
