"""kb.search.query: the law a question names, the article it cites, and whether it asks for a list."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.schema import Document
from kb.search.query import analyse
from kb.text.law_names import LawNames, title_aliases, title_subject
from kb.text.traits import enumerates


def document(doc_id: str, title: str, kind: str = "law") -> Document:
    return Document(doc_id=doc_id, title=title, kind=kind, source=f"{title}.md", content_hash=doc_id, text=title)


CIVIL = document("civil", "中华人民共和国民法典")
XINFANG = document("xinfang", "信访工作条例")
CONSUMER = document("consumer", "中华人民共和国消费者权益保护法")
DECISIONS = document("decisions", "重大行政决策程序暂行条例")
LAND = document("land", "中华人民共和国农村土地承包法")
REPORT = document("report", "某镇2024年法治政府建设情况报告", kind="report")


@pytest.fixture(scope="module")
def names() -> LawNames:
    return LawNames([CIVIL, XINFANG, CONSUMER, DECISIONS, LAND, REPORT])


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
    ("土地承包法第十条", ("land",)),  # EXTRA_ALIASES: 土地承包法 → 农村土地承包法
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


@pytest.mark.parametrize("title, subject", [
    ("中华人民共和国行政复议法", "行政复议"), ("中华人民共和国农村土地承包法", "农村土地承包"),
    ("政府信息公开条例", "政府信息公开"), ("重大行政决策程序暂行条例", "重大行政决策程序"),
    ("中华人民共和国民法典", None), ("中华人民共和国宪法", None), ("信访工作条例", None), ("某镇工作报告", None),
])
def test_a_laws_subject_is_its_name_without_its_kind(title: str, subject: str | None) -> None:
    assert title_subject(title) == subject


def test_a_question_is_about_the_laws_it_names_or_names_the_subject_of(names: LawNames) -> None:
    assert names.about("土地承包期是多少年") == ()  # 土地承包 is not the whole subject 农村土地承包
    assert names.about("农村土地承包期是多少年") == ("land",)
    assert names.about("重大行政决策程序要听证吗") == ("decisions",)
    assert names.about("民法典和农村土地承包的规定") == ("civil", "land")
    assert names.about("买东西被骗了怎么办") == ()


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


@pytest.mark.parametrize("question, found, article_no", [
    ("民法典1079条", ("civil",), 1079),
    ("民法典第1079条", ("civil",), 1079),
    ("民法典第一千零七十九条", ("civil",), 1079),
    ("民法典 第 1079 条", ("civil",), 1079),
    ("民法典　1079　条", ("civil",), 1079),  # ideographic spaces
    ("民法典１０７９条", ("civil",), 1079),  # full-width digits
    ("民法典一千零七十九条", ("civil",), 1079),
    ("《民法典》1079条", ("civil",), 1079),
    ("民法典1079条讲的什么", ("civil",), 1079),
    ("民法典1079条是什么？", ("civil",), 1079),
    ("民法典第1079条说了什么", ("civil",), 1079),
    ("信访条例14条", ("xinfang",), 14),
    ("信访工作条例第十四条的内容", ("xinfang",), 14),
    ("消法55条怎么规定的", ("consumer",), 55),  # an extra alias before the number
    ("宪法三十三条", (), 33),  # a law outside the collection still cites an article
    ("宪法第三十三条", (), 33),
    ("宪法33条的内容", (), 33),
    ("第一千零七十九条", (), 1079),  # no law named
    ("1079条是什么", (), 1079),  # nothing but the article: a lookup
    ("请问三十三条", (), 33),
    ("民法典第一千零七十九条第二款规定了哪些情形", ("civil",), 1079),
    ("买了三条鱼，民法典1079条怎么说", ("civil",), 1079),  # the count is skipped, the article found
])
def test_analyse_finds_the_article_in_every_form_people_type(
        names: LawNames, question: str, found: tuple[str, ...], article_no: int) -> None:
    result = analyse(question, names)
    assert (result.law_doc_ids, result.article_no) == (found, article_no)


@pytest.mark.parametrize("question", [
    "借了1079元",
    "三十三条鱼",
    "买了三条鱼怎么办",
    "一条路",
    "村里修了一条路",
    "2024年",
    "第三人",
    "第三人撤销之诉",
    "民法典规定了哪些离婚条件",
    "我的看法两条",  # a word ending in 法 is not a law's name
    "离婚的条件有三条吗",
])
def test_counts_years_and_ordinals_are_not_articles(names: LawNames, question: str) -> None:
    assert analyse(question, names).article_no is None


@pytest.mark.parametrize("question, lookup", [
    ("民法典1079条", True),
    ("民法典第一千零七十九条的内容", True),
    ("信访条例14条讲的什么", True),
    ("请问《民法典》第1079条是什么意思？", True),
    ("宪法三十三条说了什么", True),
    ("第十条", True),
    ("民法典第1079条规定的离婚条件有哪些", False),
    ("买了三条鱼，民法典1079条怎么说", False),
    ("信访事项多长时间办结", False),
])
def test_analyse_sees_questions_that_only_ask_to_see_the_article(names: LawNames, question: str, lookup: bool) -> None:
    assert analyse(question, names).lookup is lookup


def test_name_at_end_is_the_longest_law_name_text_ends_with() -> None:
    general = document("general", "民法典总则编解释")
    names = LawNames([CIVIL, general, XINFANG])
    assert names.name_at_end("请问民法典总则编解释") == "民法典总则编解释"
    assert names.name_at_end("请问民法典") == "民法典"
    assert names.name_at_end("信访条例") == "信访条例"
    assert names.name_at_end("民法典规定") is None


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


# --- everyday names of the default corpus's laws ------------------------------------------------------------------------

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@pytest.fixture(scope="module")
def corpus_names() -> LawNames:
    """The laws of corpus/, by the titles their files give (first line, `# <title>`)."""
    return LawNames([document(p.stem, p.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip())
                     for p in sorted(CORPUS.glob("*.md")) if p.name != "SOURCES.md"])


@pytest.mark.parametrize("name, law", [
    ("未保法", "未成年人保护法"), ("未成年保护法", "未成年人保护法"), ("妇女法", "妇女权益保障法"),
    ("妇保法", "妇女权益保障法"), ("妇女权益保护法", "妇女权益保障法"), ("土地法", "土地管理法"), ("土管法", "土地管理法"),
    ("土地承包法", "农村土地承包法"), ("承包法", "农村土地承包法"), ("治安法", "治安管理处罚法"),
    ("治安处罚法", "治安管理处罚法"), ("消法", "消费者权益保护法"), ("消保法", "消费者权益保护法"),
    ("反家暴法", "反家庭暴力法"), ("家暴法", "反家庭暴力法"), ("村组法", "村民委员会组织法"),
    ("村委会组织法", "村民委员会组织法"), ("调解法", "人民调解法"), ("援助法", "法律援助法"), ("复议法", "行政复议法"),
    ("诉讼法", "行政诉讼法"), ("行诉法", "行政诉讼法"), ("信访条例", "信访工作条例"), ("信息公开条例", "政府信息公开条例"),
    ("国安法", "国家安全法"), ("预防犯罪法", "预防未成年人犯罪法"), ("重大行政决策程序条例", "重大行政决策程序暂行条例"),
])
@pytest.mark.parametrize("question", ["按{}的规定，这种情况怎么办？", "{}第十条", "我想查一下{}"])
def test_everyday_names_find_their_law(corpus_names: LawNames, name: str, law: str, question: str) -> None:
    assert corpus_names.find(question.format(name)) == (law,)


@pytest.mark.parametrize("question", ["土地法律方面的问题问谁", "调解法院判的能改吗", "治安法规有哪些"])
def test_a_short_name_inside_another_word_names_no_law(corpus_names: LawNames, question: str) -> None:
    assert corpus_names.find(question) == ()


def test_an_everyday_name_cites_an_article(corpus_names: LawNames) -> None:
    analysis = analyse("未保法第十条讲的什么", corpus_names)
    assert analysis.law_doc_ids == ("未成年人保护法",) and analysis.article_no == 10 and analysis.lookup
