"""What a question says about where its answer is: a named law (full or short title) and an article number."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.numerals import ARTICLE_NUMBER_RE, parse_chinese_number
from kb.schema import Document

_STATE_PREFIX = "中华人民共和国"
#: The everyday names people type for laws, beside the titles' own (the 2005 信访条例 was replaced by the
#: 信访工作条例); each maps to the end of the law's short title. Names that two laws of a collection could share
#: (处罚法: 行政处罚法 or 治安管理处罚法) are left out.
EXTRA_ALIASES = {
    "信访条例": "信访工作条例",
    "消法": "消费者权益保护法",
    "消保法": "消费者权益保护法",
    "消费者保护法": "消费者权益保护法",
    "消费者权益法": "消费者权益保护法",
    "信息公开条例": "政府信息公开条例",
    "政府信息公开法": "政府信息公开条例",
    "妇女权益保护法": "妇女权益保障法",
    "妇女法": "妇女权益保障法",
    "妇保法": "妇女权益保障法",
    "妇女保护法": "妇女权益保障法",
    "国安法": "国家安全法",
    "家暴法": "反家庭暴力法",
    "反家暴法": "反家庭暴力法",
    "村委会组织法": "村民委员会组织法",
    "村组法": "村民委员会组织法",
    "村委会法": "村民委员会组织法",
    "土地承包法": "农村土地承包法",
    "承包法": "农村土地承包法",
    "土地法": "土地管理法",
    "土管法": "土地管理法",
    "治安处罚法": "治安管理处罚法",
    "治安法": "治安管理处罚法",
    "未保法": "未成年人保护法",
    "未成年保护法": "未成年人保护法",
    "预防犯罪法": "预防未成年人犯罪法",
    "预防青少年犯罪法": "预防未成年人犯罪法",
    "调解法": "人民调解法",
    "援助法": "法律援助法",
    "复议法": "行政复议法",
    "行诉法": "行政诉讼法",
    "诉讼法": "行政诉讼法",
    "决策条例": "重大行政决策程序暂行条例",
}
#: After a name ending in 法, these make it another word: 土地法律, 调解法院, 治安法规 (but 消法规定 is a law).
_NOT_A_LAW_AFTER = "(?!律|院|官|庭|治|规(?!定))"


ASKS_FOR_LIST_RE = re.compile(r"哪些|哪几|几种|几类|哪种|哪类|有什么(?:权利|义务|职责|原则|条件|材料|情形)")
ENUMERATION_RE = re.compile(r"下列|[（(]一[）)][\s\S]*[（(]二[）)]")
#: What may come before a law's name in a question that only asks to see an article: 请问, 查一下, 《.
_ASK_RE = re.compile(r"\s*(?:请问|请|麻烦)?\s*(?:帮我)?\s*(?:查询|查一下|查查|查|看看|看一下|显示|找一下)?\s*[《「“\"]?\s*")
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


def enumerates(text: str) -> bool:
    """Does a passage list things (下列…, or several （一）（二） items)?"""
    return bool(ENUMERATION_RE.search(text))


def title_aliases(title: str) -> set[str]:
    """Ways people name a document: 中华人民共和国民法典 → 民法典; 信访工作条例 → 信访条例."""
    aliases = {title}
    short = title.removeprefix(_STATE_PREFIX)
    if len(short) >= 2:
        aliases.add(short)
    for long_form, short_form in (("工作条例", "条例"), ("暂行条例", "条例"), ("暂行办法", "办法")):
        if short.endswith(long_form) and len(short) > len(long_form):
            aliases.add(short[: -len(long_form)] + short_form)
    return aliases


#: A law's subject, named without 法/条例 (行政复议法 → 行政复议), counts from this many characters: shorter ones
#: (民法典, 宪法, 信访工作条例 → 信访) are too common in other texts to say which law a question is about.
SUBJECT_MIN_CHARS = 4


def title_subject(title: str) -> str | None:
    """What a law is about, as people name it without its kind: 中华人民共和国行政复议法 → 行政复议."""
    short = title.removeprefix(_STATE_PREFIX)
    for kind in ("暂行条例", "工作条例", "条例", "法"):
        if short.endswith(kind):
            stem = short[: -len(kind)]
            return stem if len(stem) >= SUBJECT_MIN_CHARS else None
    return None


class LawNames:
    """Finds the documents a question names, longest name first, so 民法典 never matches inside 民法典总则 twice."""

    def __init__(self, documents: list[Document]) -> None:
        by_alias: dict[str, set[str]] = {}
        for doc in documents:
            if doc.kind != "law":
                continue
            for alias in title_aliases(doc.title):
                by_alias.setdefault(alias, set()).add(doc.doc_id)
        for alias, target in EXTRA_ALIASES.items():
            targets = {d for a, ids in by_alias.items() if a.endswith(target) for d in ids}
            if targets:
                by_alias.setdefault(alias, set()).update(targets)
        self._aliases = sorted(by_alias.items(), key=lambda item: -len(item[0]))
        self._patterns = [(re.compile(re.escape(alias) + (_NOT_A_LAW_AFTER if alias.endswith("法") else "")),
                           doc_ids) for alias, doc_ids in self._aliases]
        self._subjects = [(subject, doc.doc_id) for doc in documents
                          if doc.kind == "law" and (subject := title_subject(doc.title))]

    def name_at_end(self, text: str) -> str | None:
        """The longest name of a law in the collection that text ends with (民法典 in 请问民法典), if any."""
        return next((alias for alias, _ in self._aliases if text.endswith(alias)), None)

    def about(self, question: str) -> tuple[str, ...]:
        """The laws a question names or names the subject of (「行政复议的期限」 is about 行政复议法)."""
        subjects = [doc_id for subject, doc_id in self._subjects if subject in question]
        return tuple(dict.fromkeys([*self.find(question), *subjects]))

    def find(self, question: str) -> tuple[str, ...]:
        """The laws a question names, by title or everyday name (未保法, 消法, 村组法 …)."""
        remaining = question
        found: list[str] = []
        for pattern, doc_ids in self._patterns:
            if pattern.search(remaining):
                remaining = pattern.sub("\0", remaining)
                found += [d for d in sorted(doc_ids) if d not in found]
        return tuple(found)


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
