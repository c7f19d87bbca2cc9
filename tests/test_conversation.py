"""Reading a follow-up (kb/conversation.py) without the model: which earlier question, and how lists are fused."""

from __future__ import annotations

from kb.config import FollowUpParams
from kb.conversation import REFERS_BACK_RE, fuse, previous_question, stands_alone
from kb.retrieve import Retrieval
from kb.schema import Hit


def hit(article_no: int, doc_id: str = "law") -> Hit:
    return Hit(chunk_id=f"{doc_id}-{article_no}", doc_id=doc_id, doc_title="条例", doc_kind="law", doc_date=None,
               section="", article=f"第{article_no}条", article_no=article_no, citation=f"《条例》第{article_no}条",
               text="", score=0.0, start=0, end=0)


def test_the_previous_question_is_the_last_non_empty_one() -> None:
    assert previous_question(["信访事项多久办结？", "  ", ""]) == "信访事项多久办结？"
    assert previous_question(["甲？", "乙？"]) == "乙？"
    assert previous_question([]) == "" and previous_question("只有一个问题？") == "只有一个问题？"


def test_fusion_ranks_by_both_lists_and_favours_the_articles_beside_the_previous_answer() -> None:
    params = FollowUpParams(alone_weight=1.0, together_weight=0.5, rank_offset=5, neighbour_bonus=0.02,
                            neighbour_width=1)
    alone = [hit(10), hit(35), hit(20)]
    together = [hit(35), hit(10), hit(20)]
    fused = fuse(alone, together, hit(36), params)
    assert [h.article_no for h in fused] == [35, 10, 20]  # 35: second alone, first together, and beside 36
    assert fused[0].score > fused[1].score > fused[2].score
    far = fuse([hit(10), hit(35)], [], hit(90), params)
    assert [h.article_no for h in far] == [10, 35], "no bonus far from the previous answer"
    other_law = fuse([hit(10), hit(35, "other")], [], hit(36), params)
    assert [h.article_no for h in other_law] == [10, 35], "nor in another document"


def test_words_pointing_back_into_the_conversation_are_recognised() -> None:
    for elliptical in ("他不遵守怎么办？", "那要是不满意呢？", "这钱村里要公开吗？", "对方不愿意调呢", "单位这么干会被罚吗？"):
        assert REFERS_BACK_RE.search(elliptical), elliptical
    for full in ("村委会选举时在外地打工回不去，能委托家里人投票吗？", "侵害他人名誉要承担什么责任？", "老师可以体罚学生吗？"):
        assert not REFERS_BACK_RE.search(full), full


def test_a_question_stands_alone_only_when_full_pointing_nowhere_back_and_surely_answered() -> None:
    params = FollowUpParams(standalone_chars=12, standalone_confidence=0.9)
    alone = Retrieval([hit(1)], 0.9)
    sure, unsure = (lambda q, r: 0.95), (lambda q, r: 0.6)
    full = "村委会选举时在外地打工回不去，能委托家里人投票吗？"
    assert stands_alone(full, alone, params, sure)
    assert not stands_alone(full, alone, params, unsure), "not answered surely on its own"
    assert not stands_alone("老师可以体罚学生吗？", alone, params, sure), "too short to be sure it is complete"
    assert not stands_alone("他要是把地撂荒了，我能收回来吗？", alone, params, sure), "他 points back"
