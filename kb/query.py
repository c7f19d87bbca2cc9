"""What a question says about where its answer is: a named law (full or short title) and an article number."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.numerals import ARTICLE_RE, parse_chinese_number
from kb.schema import Document

_STATE_PREFIX = "中华人民共和国"
#: Names people use for laws whose titles differ (the 2005 信访条例 was replaced by the 信访工作条例).
EXTRA_ALIASES = {
    "信访条例": "信访工作条例",
    "消法": "消费者权益保护法",
    "消保法": "消费者权益保护法",
    "信息公开条例": "政府信息公开条例",
    "妇女权益保护法": "妇女权益保障法",
    "国安法": "国家安全法",
    "家暴法": "反家庭暴力法",
}


_ASKS_FOR_LIST_RE = re.compile(r"哪些|哪几|几种|几类|哪种|哪类|有什么(?:权利|义务|职责|原则|条件|材料|情形)")
_ENUMERATION_RE = re.compile(r"下列|[（(]一[）)][\s\S]*[（(]二[）)]")


@dataclass(frozen=True)
class QueryAnalysis:
    law_doc_ids: tuple[str, ...]  # documents the question names
    article_no: int | None  # 第三十四条 / 第34条 in the question
    asks_for_list: bool  # 哪些/哪几种: statutes answer these with enumerations (下列…（一）（二）)


def enumerates(text: str) -> bool:
    """Does a passage list things (下列…, or several （一）（二） items)?"""
    return bool(_ENUMERATION_RE.search(text))


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

    def find(self, question: str) -> tuple[str, ...]:
        remaining = question
        found: list[str] = []
        for alias, doc_ids in self._aliases:
            if alias in remaining:
                remaining = remaining.replace(alias, "\0")
                found += [d for d in sorted(doc_ids) if d not in found]
        return tuple(found)


def analyse(question: str, law_names: LawNames) -> QueryAnalysis:
    match = ARTICLE_RE.search(question)
    article_no = None
    if match:
        try:
            article_no = parse_chinese_number(match.group(1))
        except ValueError:
            article_no = None
    return QueryAnalysis(law_names.find(question), article_no, bool(_ASKS_FOR_LIST_RE.search(question)))
