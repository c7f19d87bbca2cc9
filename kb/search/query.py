"""What a question says about where its answer is: a named law (full or short title) and an article number."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.text.law_names import LawNames
from kb.text.numerals import ARTICLE_NUMBER_RE, parse_chinese_number

ASKS_FOR_LIST_RE = re.compile(r"哪些|哪几|几种|几类|哪种|哪类|有什么(?:权利|义务|职责|原则|条件|材料|情形)")
#: What may come before a law's name in a question that only asks to see an article: 请问, 查一下, 《.
_ASK_RE = re.compile(r"\s*(?:请问|请|麻烦)?\s*(?:帮我)?\s*(?:查询|查一下|查查|查|看看|看一下|显示|找一下)?"
                     r"\s*[《「“\"]?\s*")
#: What may follow the article in such a question: 的内容, 讲的什么, 是什么, 说了什么, 怎么规定的, or nothing.
_LOOKUP_TAIL_RE = re.compile(
    r"\s*(?:的?(?:内容|原文|全文|条文|规定))?\s*"
    r"(?:是?(?:讲|说|写|规定)?(?:了|的)?是?(?:什么|啥)(?:意思|内容)?|是?怎么(?:规定|说|讲|写)的?)?"
    r"\s*(?:呢|啊|呀|吗)?[\s?？。.!！]*")
#: A name that looks like a law's (宪法, 刑法, 某某条例) though the collection has no such law.
_TITLE_LIKE_RE = re.compile(r"[\u4e00-\u9fff]{1,12}(?:法典|法|条例)$")
#: Everyday words ending in 法 that are no law's name: 这个办法三条, 我的看法两条.
_NOT_A_TITLE_RE = re.compile(r"(?:方|做|看|说|想|办|用|写|依|合|违|非|守|无|设)法$")


@dataclass(frozen=True)
class QueryAnalysis:
    law_doc_ids: tuple[str, ...]  # documents the question names
    article_no: int | None  # 第三十四条 / 第34条, or 34条 right after a law's name (信访条例34条)
    asks_for_list: bool  # 哪些/哪几种: statutes answer these with enumerations (下列…（一）（二）)
    lookup: bool = False  # the question only asks to see that article: 民法典1079条讲的什么, 第十条


def analyse(question: str, law_names: LawNames) -> QueryAnalysis:
    article_no, lookup = _cited_article(question, law_names)
    return QueryAnalysis(law_names.find(question), article_no, bool(ASKS_FOR_LIST_RE.search(question)), lookup)


def _cited_article(question: str, law_names: LawNames) -> tuple[int | None, bool]:
    """The first article the question cites, and whether the question asks for nothing but that article.

    A number before 条 is an article when 第 precedes it (第1079条), when a law's name does (民法典1079条), or when
    the question is nothing else (1079条是什么); otherwise it counts things (三十三条鱼, 一条路)."""
    for match in ARTICLE_NUMBER_RE.finditer(question):
        try:
            number = parse_chinese_number(match.group(2))
        except ValueError:
            continue
        before = question[: match.start()]
        before_law = _before_law_name(before, law_names)
        lookup = bool(_ASK_RE.fullmatch(before if before_law is None else before_law)
                      and _LOOKUP_TAIL_RE.fullmatch(question[match.end():]))
        if match.group(1) or before_law is not None or lookup:
            return number, lookup
    return None, False


def _before_law_name(text: str, law_names: LawNames) -> str | None:
    """What precedes the law's name that text ends with (past blanks and 》), or None when it ends with none.

    Names of laws outside the collection count too (宪法三十三条 cites an article whether or not 宪法 is indexed)."""
    text = text.rstrip().rstrip("》」”\"").rstrip()
    name = law_names.name_at_end(text)
    if name is None:
        title = _TITLE_LIKE_RE.search(text)
        if title is None or _NOT_A_TITLE_RE.search(text):
            return None
        name = title.group(0)
    return text[: -len(name)]
