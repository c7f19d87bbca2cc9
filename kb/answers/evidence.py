"""Does the passage answer *this* question, or is it only related to it?

Closeness in meaning says that a passage is on the question's topic, not that it holds what was asked. So
before a passage is read out as the answer, three checks a person would make:

- **the year**: 「2023年调处了多少件矛盾纠纷？」 is not answered by the 2024 report; say that only 2024's
  figures are held, and show them as related;
- **the place**: 「唐古拉山镇……」 is not answered by documents that never name 唐古拉山镇;
- **what is asked for**: a phone number, an address, opening hours, a person's name or a figure must be in the
  quoted text; 「镇公共法律服务站的电话是多少？」 is not answered by a passage about the service station.

A question that fails one gets the passage as related, not as the answer (kb/answers/answer.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kb.schema import Hit
from kb.text.tokenize import words_of

_YEAR_RE = re.compile(r"(?<![0-9])((?:19|20)[0-9]{2})\s*年")
#: A named place: a word of three or more characters ending in 镇/乡/县/市/州 (安多县, 雁石坪镇), or a name of two
#: or more followed by that character as a word of its own (唐古拉山 镇) — not 城市, 超市, 乡镇, 大城市.
_PLACE_END = frozenset("镇乡县市州")
_NOT_PLACES = ("城市", "城镇", "超市", "乡镇", "集市", "股市", "夜市", "菜市", "黑市", "都市", "县市")

#: What a question asks for → what the quoted text must then contain.
_NUMERAL = (r"[0-9０-９]|[零〇一二两三四五六七八九十百千万半]+"
            r"\s*(?:个|件|次|场|人|名|份|所|位|户|起|家|元|倍|日|天|月|年|周岁|周|小时|分之)")
_ASKED: dict[str, tuple[re.Pattern, re.Pattern]] = {
    "phone": (re.compile(r"(?:电话|号码|热线|手机号)(?:是|多少|号码)|(?:什么|哪个)(?:电话|号码)|联系方式"),
              re.compile(r"[0-9]{5,}|[0-9]{3,4}-[0-9]{7,8}")),
    "address": (re.compile(r"地址|具体位置|什么位置|门牌|在什么地方"),
                re.compile(r"[路街巷道][0-9０-９一二三四五六七八九十]+号|[0-9０-９]+号|[0-9０-９]+室")),
    "hours": (re.compile(r"几点|上班时间|办公时间|工作时间|营业时间|开门|关门|周末|节假日|上班吗|几号|哪一天|哪天"),
              re.compile(r"[0-9０-９]{1,2}\s*[:：点时号]|上午|下午|工作日|周[一二三四五六日末]|星期|节假日|每月")),
    "person": (re.compile(r"叫什么名字|姓名是什么|(?:镇长|书记|所长|站长|主任|局长|院长|校长|村长)是谁"),
               re.compile(r"同志|先生|女士")),
    "figure": (re.compile(r"多少|几(?:个|件|次|场|人|名|份|所|位|户|起|家|岁|年|天|日|倍)"
                          r"|多大|多高|多长|多远|多重|比例|成功率"),
               re.compile(_NUMERAL + r"|免费|不收取|无偿|不得收取|%|％")),
}


@dataclass(frozen=True)
class Shortfall:
    """Why a passage is related to the question but is not its answer."""

    reason: str  # "year" | "place" | "phone" | "address" | "hours" | "person" | "figure"
    note: str  # said before the related passage, e.g. 知识库中只有2024年的数据。


def shortfall(question: str, quoted: str, hit: Hit, mentioned: Callable[[str], bool]) -> Shortfall | None:
    """The first check the quoted passage fails for this question, or None when it may answer it.

    `mentioned(name)` says whether any document of the knowledge base names a place."""
    years = set(_YEAR_RE.findall(question))
    held = _document_years(hit)
    if years and held and not years & held:
        return Shortfall("year", f"知识库中只有{'、'.join(sorted(held))}年的数据，没有{'、'.join(sorted(years))}年的。")
    for place in named_places(question):
        if not mentioned(place) and not mentioned(place[:-1]):  # 信息县 is 信息 + 县, not a place
            return Shortfall("place", f"知识库中没有关于{place}的资料。")
    quoted = _YEAR_RE.sub("", quoted)  # 「2024年，……」 is when, not a figure that answers 「有多少人口」
    for reason, (asks, holds) in _ASKED.items():
        if asks.search(question) and not holds.search(quoted):
            return Shortfall(reason, "知识库中没有找到您问的具体内容。")
    return None


def named_places(question: str) -> list[str]:
    """Places the question names: 唐古拉山镇, 安多县 …"""
    words = words_of(question)
    places = []
    for i, word in enumerate(words):
        if len(word) >= 3 and word[-1] in _PLACE_END:
            candidate = word
        elif word in _PLACE_END and i > 0 and len(words[i - 1]) >= 2 and _is_name(words[i - 1]):
            candidate = words[i - 1] + word
        else:
            continue
        if not candidate.endswith(_NOT_PLACES):
            places.append(candidate)
    return places


def _is_name(word: str) -> bool:
    return all("\u4e00" <= ch <= "\u9fff" for ch in word)


def _document_years(hit: Hit) -> set[str]:
    """The years a report is about (its title's, e.g. 雁石坪镇2024年…报告); none for a law, whose date is when
    it was made, not what it is about."""
    if hit.doc_kind == "law":
        return set()
    return set(_YEAR_RE.findall(hit.doc_title)) or ({hit.doc_date[:4]} if hit.doc_date else set())
