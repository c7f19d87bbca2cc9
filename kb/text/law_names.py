"""The names of the laws in a collection as people type them: full and short titles, 信访条例 for 信访工作条例,
everyday names (未保法, 消法, 村组法 …), and a law's subject (行政复议 → 行政复议法).

Both stores build one LawNames from their documents; question analysis (kb/search/query.py) and follow-up
reading ask it which laws a question names.
"""

from __future__ import annotations

import re

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
