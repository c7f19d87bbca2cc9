"""「其他可能相关的条文」 (kb/answers/related.py): other candidates below an answer whose first citation may be wrong."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_api import make_client

from kb.answers.related import FIRST_LINE_CHARS, first_line, margin, other_passages, related_passages
from kb.config import AnswerParams, Settings
from kb.knowledge_base import KnowledgeBase
from kb.schema import Hit


def hit(article_no: int, score: float, text: str = "") -> Hit:
    return Hit(chunk_id=f"law-{article_no}", doc_id="law", doc_title="条例", doc_kind="law", doc_date="2022-02-25",
               section="", article=f"第{article_no}条", article_no=article_no, citation=f"《条例》第{article_no}条",
               text=text or f"第{article_no}条 内容。", score=score, start=0, end=0)


def test_the_margin_is_the_rankers_lead_of_the_first_passage() -> None:
    assert margin([hit(1, 2.5), hit(2, 1.0)], follow_up=False) == 1.5
    assert math.isclose(margin([hit(1, 0.6), hit(2, 0.2)], follow_up=True), math.log(3))  # shares: log-ratio
    assert margin([hit(1, 2.5)], follow_up=False) == math.inf


def test_other_passages_leave_out_what_is_cited() -> None:
    hits = [hit(n, 5.0 - n) for n in range(1, 7)]
    assert [h.article_no for h in other_passages(hits[:2], hits, 3)] == [3, 4, 5]
    assert [h.article_no for h in other_passages([hits[0], hits[3]], hits, 3)] == [2, 3, 5]


def test_the_first_line_is_the_first_paragraph_without_the_label_and_is_kept_short() -> None:
    assert first_line(hit(5, 1.0, "第五条 信访工作应当遵循下列原则：\n（一）坚持党的全面领导。")) == "信访工作应当遵循下列原则："
    long = first_line(hit(6, 1.0, "第六条 " + "很长的一句话" * 20))
    assert len(long) == FIRST_LINE_CHARS and long.endswith("…")


def test_the_list_is_shown_only_for_an_unsure_answer() -> None:
    hits = [hit(1, 2.0), hit(2, 1.8), hit(3, 1.0), hit(4, 0.5), hit(5, 0.1)]
    unsure = related_passages(True, False, hits[:1], hits, False, threshold=1.0, limit=3)
    assert [h.article_no for h in unsure] == [2, 3, 4]
    assert related_passages(True, False, hits[:1], hits, False, threshold=0.1, limit=3) == []  # sure enough
    assert related_passages(False, False, [], hits, False, threshold=1.0, limit=3) == []  # no answer
    assert related_passages(True, True, hits[:1], hits, False, threshold=1.0, limit=3) == []  # a cited article


#: Everyday questions, several of which the ranker is unsure about.
EVERYDAY = ["邻居的树挡了我家的光怎么办？", "借钱不还怎么办？", "村里的账目多久公布一次？", "老人去世后房子归谁？",
            "网购的东西不满意能退吗？", "被狗咬了谁负责？", "信访事项多长时间办结？"]


@pytest.mark.slow
def test_answers_carry_the_other_candidates_when_unsure(corpus_kb: KnowledgeBase) -> None:
    """Over the real model: an answer's list holds up to 3 passages, none cited, each with its first line;
    a question citing an article and one the knowledge base cannot answer get none."""
    params: AnswerParams = corpus_kb.answer_params
    shown = 0
    for question in EVERYDAY:
        answer = corpus_kb.ask(question)
        assert len(answer.related_passages) <= params.related_passages
        cited = {c.hit.chunk_id for c in answer.citations}
        assert not cited & {h.chunk_id for h in answer.related_passages}
        for item in answer.to_dict()["related_passages"]:
            assert item["first_line"] and item["first_line"].rstrip("…") in item["text"]
            assert item["citation"].startswith("《")
        shown += bool(answer.related_passages)
    assert shown, "none of these everyday questions was unsure enough: check AnswerParams.related_margin"
    assert corpus_kb.ask("民法典第一千零七十九条").related_passages == []
    assert corpus_kb.ask("明天天气怎么样？").related_passages == []


@pytest.mark.slow
def test_every_channel_shows_the_other_candidates(corpus_kb: KnowledgeBase, corpus_index: Path, settings: Settings,
                                                  tmp_path: Path) -> None:
    question = next(q for q in EVERYDAY if corpus_kb.ask(q).related_passages)
    client = make_client(settings, corpus_kb, tmp_path, corpus_index)
    body = client.post("/api/ask", json={"question": question}).json()
    assert 1 <= len(body["related_passages"]) <= 3
    assert all(item["first_line"] and item["citation"] for item in body["related_passages"])
    chat = client.post("/v1/chat/completions", json={"model": "zhengwu-kb", "messages": [
        {"role": "user", "content": question}]}).json()
    reply = chat["choices"][0]["message"]["content"]
    assert "其他可能相关的条文" in reply and body["related_passages"][0]["citation"] in reply
