"""Searching the real corpus (slow: the session ingests corpus/ once). Expected answers are facts of the corpus."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from conftest import DEV_SET, corpus_sources

from kb.evaluate import load_questions, score
from kb.knowledge_base import KnowledgeBase, QueryError
from kb.schema import Hit

pytestmark = pytest.mark.slow

XINFANG = "信访工作条例"
CIVIL_CODE = "中华人民共和国民法典"
REPORT = "雁石坪镇2024年法治政府建设情况报告"
HIT_FIELDS = {"chunk_id", "doc_id", "doc_title", "doc_kind", "doc_date", "section", "article", "article_no",
              "citation", "text", "score", "start", "end"}


def assert_hit_is_consistent(kb: KnowledgeBase, hit: Hit) -> None:
    """Every hit is a real span of its document and carries that document's metadata."""
    document = kb.documents[hit.doc_id]
    assert hit.text == document.text[hit.start : hit.end]
    assert (hit.doc_title, hit.doc_kind, hit.doc_date) == (document.title, document.kind, document.doc_date)
    assert hit.citation == f"《{document.title}》{hit.article or ''}"
    chunk = next(c for c in kb.store.chunks if c.chunk_id == hit.chunk_id)
    assert (chunk.doc_id, chunk.article_no, chunk.section) == (hit.doc_id, hit.article_no, hit.section)
    assert hit.start <= chunk.start and chunk.end <= hit.end


def test_index_holds_the_whole_corpus(corpus_kb: KnowledgeBase) -> None:
    sources = corpus_sources()
    assert sorted(d.title for d in corpus_kb.documents.values()) == sorted(r.title for r in sources.values())
    for document in corpus_kb.documents.values():
        row = sources[document.source]
        articles = {c.article_no for c in corpus_kb.store.chunks if c.doc_id == document.doc_id and c.article_no}
        assert len(articles) == (row.expected_articles or 0), document.title


def test_xinfang_deadline_question(corpus_kb: KnowledgeBase) -> None:
    hits = corpus_kb.search("信访事项多长时间办结")
    assert len(hits) == 5
    first = hits[0]
    assert set(first.to_dict()) == HIT_FIELDS == {f.name for f in fields(Hit)}
    assert first.citation == "《信访工作条例》第三十四条"
    assert (first.doc_title, first.doc_kind, first.doc_date) == (XINFANG, "law", "2022-02-25")
    assert (first.article, first.article_no, first.section) == ("第三十四条", 34, "第四章 信访事项的办理")
    assert "自受理之日起60日内办结" in first.text
    assert first.chunk_id.startswith(first.doc_id)
    assert isinstance(first.score, float)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    json.dumps([h.to_dict() for h in hits], ensure_ascii=False)  # serialisable as the CLI and API send it
    for hit in hits:
        assert_hit_is_consistent(corpus_kb, hit)


@pytest.mark.parametrize(
    ("question", "title", "article_no"),
    [
        ("信访工作条例第三十四条", XINFANG, 34),
        ("信访条例第34条", XINFANG, 34),  # the 2005 name, Arabic numerals
        ("民法典第一千二百六十条", CIVIL_CODE, 1260),
        ("宪法第八十九条规定了什么", "中华人民共和国宪法", 89),
    ],
)
def test_direct_article_lookup(corpus_kb: KnowledgeBase, question: str, title: str, article_no: int) -> None:
    first = corpus_kb.search(question)[0]
    assert (first.doc_title, first.article_no) == (title, article_no)
    assert first.text.startswith(first.article)


def test_naming_a_law_favours_it(corpus_kb: KnowledgeBase) -> None:
    hits = corpus_kb.search("民法典 遗嘱", top_k=5)
    assert [h.doc_title for h in hits[:3]] == [CIVIL_CODE] * 3
    assert all("遗嘱" in h.text for h in hits[:3])


def test_paraphrased_question(corpus_kb: KnowledgeBase) -> None:
    hits = corpus_kb.search("自己亲手写的遗嘱有效吗？")  # 第一千一百三十四条: 自书遗嘱
    assert (CIVIL_CODE, 1134) in [(h.doc_title, h.article_no) for h in hits[:3]]


def test_report_question(corpus_kb: KnowledgeBase) -> None:
    hits = corpus_kb.search("镇里2024年开展了多少场法治宣传活动？")
    assert any(h.doc_title == REPORT and "50余场次" in h.text for h in hits)
    report_hit = next(h for h in hits if h.doc_title == REPORT)
    assert (report_hit.article, report_hit.article_no, report_hit.doc_date) == (None, None, "2024")
    assert report_hit.citation == f"《{REPORT}》"
    assert report_hit.section.startswith("一、工作开展情况")


@pytest.mark.parametrize("question", ["国务院行使下列职权", "消费者权益 经营者 欺诈 赔偿", "信访事项多长时间办结"])
def test_one_hit_per_article(corpus_kb: KnowledgeBase, question: str) -> None:
    hits = corpus_kb.search(question, top_k=50)
    assert len(hits) == 50
    keys = [(h.doc_id, h.article_no) for h in hits if h.article_no is not None]
    assert len(keys) == len(set(keys))
    assert len({h.chunk_id for h in hits}) == len(hits)


def test_hit_for_a_split_article_spans_the_whole_article(corpus_kb: KnowledgeBase) -> None:
    later_parts = [c for c in corpus_kb.store.chunks if c.part > 1]
    assert later_parts, "the corpus has articles longer than max_chunk_chars"
    for part in later_parts:
        siblings = [c for c in corpus_kb.store.chunks if (c.doc_id, c.article_no) == (part.doc_id, part.article_no)]
        hits = corpus_kb.search(part.text[:80], top_k=10)
        hit = next((h for h in hits if (h.doc_id, h.article_no) == (part.doc_id, part.article_no)), None)
        assert hit is not None, f"searching the text of {part.chunk_id} does not find its article"
        assert (hit.start, hit.end) == (siblings[0].start, siblings[-1].end)
        assert hit.text.startswith(part.article) and part.text in hit.text
        assert_hit_is_consistent(corpus_kb, hit)


def test_report_filter(corpus_kb: KnowledgeBase) -> None:
    hits = corpus_kb.search("法治宣传活动", top_k=5, filters={"doc_kind": "report"})
    assert len(hits) == 5
    assert {h.doc_kind for h in hits} == {"report"}
    hits = corpus_kb.search("信访事项多长时间办结", top_k=5, filters={"doc_kind": "report"})
    assert hits and {h.doc_title for h in hits} == {REPORT}


def test_title_filter(corpus_kb: KnowledgeBase) -> None:
    hits = corpus_kb.search("依法维护群众权益", top_k=5, filters={"title_contains": "信访"})
    assert len(hits) == 5 and {h.doc_title for h in hits} == {XINFANG}


def test_filtered_search_fills_top_k_from_the_allowed_documents(corpus_kb: KnowledgeBase) -> None:
    report_chunks = sum(1 for c in corpus_kb.store.chunks if corpus_kb.documents[c.doc_id].kind == "report")
    assert report_chunks >= 10
    hits = corpus_kb.search("民法典 遗嘱", top_k=10, filters={"doc_kind": "report"})
    assert len(hits) == 10 and {h.doc_kind for h in hits} == {"report"}


@pytest.mark.parametrize(
    ("query", "kwargs", "message"),
    [
        ("", {}, "问题不能为空"),
        ("   \n", {}, "问题不能为空"),
        ("信访", {"top_k": 0}, "top_k"),
        ("信访", {"top_k": 101}, "top_k"),
        ("信访", {"filters": {"kind": "law"}}, "未知的过滤条件"),
    ],
)
def test_bad_queries_raise_query_error(corpus_kb: KnowledgeBase, query: str, kwargs: dict, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        corpus_kb.search(query, **kwargs)


def test_dev_set_quality_gate(corpus_kb: KnowledgeBase) -> None:
    if not DEV_SET.is_file():
        pytest.skip(f"{DEV_SET} not found")
    questions = load_questions(DEV_SET)
    result = score(questions, lambda q: corpus_kb.search(q, top_k=10))
    overall = result["metrics"]["overall"]
    print(f"dev set: {json.dumps(result['metrics'], ensure_ascii=False)}")
    assert overall["n"] == sum(1 for q in questions if q.answerable) > 0
    missed = [(d["id"], d["q"], d["rank"], d["top"]) for d in result["questions"]
              if d.get("answerable", True) and (d["rank"] is None or d["rank"] > 5)]
    assert overall["hit@5"] >= 0.90, f"Hit@5 {overall['hit@5']}; missed: {missed}"
    assert overall["mrr@10"] >= 0.75, f"MRR@10 {overall['mrr@10']}"
