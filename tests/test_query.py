"""kb.query: the law a question names, the article it cites, and whether it asks for a list."""

from __future__ import annotations

import pytest

from kb.query import LawNames, analyse, enumerates, title_aliases
from kb.schema import Document


def document(doc_id: str, title: str, kind: str = "law") -> Document:
    return Document(doc_id=doc_id, title=title, kind=kind, source=f"{title}.md", content_hash=doc_id, text=title)


CIVIL = document("civil", "中华人民共和国民法典")
XINFANG = document("xinfang", "信访工作条例")
CONSUMER = document("consumer", "中华人民共和国消费者权益保护法")
DECISIONS = document("decisions", "重大行政决策程序暂行条例")
REPORT = document("report", "某镇2024年法治政府建设情况报告", kind="report")


@pytest.fixture(scope="module")
def names() -> LawNames:
    return LawNames([CIVIL, XINFANG, CONSUMER, DECISIONS, REPORT])


# --- title_aliases ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("title, aliases", [
    ("中华人民共和国民法典", {"中华人民共和国民法典", "民法典"}),
    ("信访工作条例", {"信访工作条例", "信访条例"}),
    ("重大行政决策程序暂行条例", {"重大行政决策程序暂行条例", "重大行政决策程序条例"}),
    ("中华人民共和国行政处罚暂行办法", {"中华人民共和国行政处罚暂行办法", "行政处罚暂行办法", "行政处罚办法"}),
    ("政府信息公开条例", {"政府信息公开条例"}),
    ("工作条例", {"工作条例"}),  # nothing left before the suffix: no alias "条例"
    ("中华人民共和国", {"中华人民共和国"}),  # nothing left after the prefix
])
def test_title_aliases(title: str, aliases: set[str]) -> None:
    assert title_aliases(title) == aliases


# --- LawNames ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question, found", [
    ("民法典第一千二百六十条是什么", ("civil",)),
    ("中华人民共和国民法典规定遗嘱怎么写", ("civil",)),
    ("信访工作条例第三十四条", ("xinfang",)),
    ("信访条例第34条", ("xinfang",)),  # the old law's name, and the short form of the new title
    ("消法规定退货吗", ("consumer",)),  # EXTRA_ALIASES: 消法 → 消费者权益保护法
    ("消费者权益保护法第五十五条", ("consumer",)),
    ("重大行政决策程序条例", ("decisions",)),
    ("信访事项多长时间办结", ()),  # no law named
    ("国安法怎么规定", ()),  # an extra alias whose law is not in the collection
    ("法治政府建设情况报告", ()),  # only laws are named
])
def test_law_names_find_the_named_documents(names: LawNames, question: str, found: tuple[str, ...]) -> None:
    assert names.find(question) == found


def test_several_named_laws_are_all_found(names: LawNames) -> None:
    found = names.find("民法典和信访工作条例有什么不同")
    assert sorted(found) == ["civil", "xinfang"] and len(found) == 2


def test_a_longer_name_is_not_also_matched_by_a_shorter_one_inside_it() -> None:
    general = document("general", "民法典总则编解释")
    names = LawNames([CIVIL, general])
    assert names.find("民法典总则编解释第五条") == ("general",)
    assert names.find("民法典第五条") == ("civil",)


def test_two_documents_with_one_name_are_both_found() -> None:
    old, new = document("b-new", "中华人民共和国土地管理法"), document("a-old", "土地管理法")
    found = LawNames([old, new]).find("土地管理法第十条")
    assert sorted(found) == ["a-old", "b-new"] and len(found) == 2


def test_no_documents_find_nothing() -> None:
    assert LawNames([]).find("民法典第一条") == ()


# --- analyse -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question, article_no", [
    ("信访条例第三十四条", 34),
    ("民法典第1260条", 1260),
    ("民法典第一千二百六十条", 1260),
    ("第 12 条怎么理解", 12),
    ("第十条", 10),
    ("信访事项多长时间办结", None),
    ("第三章讲什么", None),
])
def test_analyse_finds_the_article_number(names: LawNames, question: str, article_no: int | None) -> None:
    assert analyse(question, names).article_no == article_no


@pytest.mark.parametrize("question, asks_for_list", [
    ("村民委员会有哪些职责", True),
    ("法律援助有哪几种形式", True),
    ("申请法律援助有什么条件", True),
    ("信访人有什么权利", True),
    ("信访事项多长时间办结", False),
    ("什么是家庭暴力", False),
])
def test_analyse_sees_questions_that_ask_for_a_list(names: LawNames, question: str, asks_for_list: bool) -> None:
    assert analyse(question, names).asks_for_list is asks_for_list


def test_analyse_puts_it_together(names: LawNames) -> None:
    result = analyse("信访条例第三十四条规定了哪些期限", names)
    assert (result.law_doc_ids, result.article_no, result.asks_for_list) == (("xinfang",), 34, True)
    plain = analyse("今天天气怎么样", names)
    assert (plain.law_doc_ids, plain.article_no, plain.asks_for_list) == ((), None, False)


# --- enumerates ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("有下列情形之一的，不予受理：", True),
    ("（一）属于各级人民代表大会职权范围的；（二）已经或者依法应当通过诉讼解决的；", True),
    ("(一)甲；(二)乙", True),
    ("第一条\n（一）甲\n（二）乙", True),
    ("（一）只有一项", False),
    ("信访事项应当自受理之日起60日内办结。", False),
    ("", False),
])
def test_enumerates(text: str, expected: bool) -> None:
    assert enumerates(text) is expected
