"""Chinese numerals as used in article numbers: 第一千二百六十条 → 1260, 第34条 → 34."""

from __future__ import annotations

import re

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")

CHINESE_NUMERAL_CHARS = "零〇一二两三四五六七八九十百千万"
#: A number as people write it: Chinese (三十四), Arabic (34) or full-width (３４).
NUMBER_PATTERN = rf"[{CHINESE_NUMERAL_CHARS}]+|[0-9０-９]+"
#: An article reference as it appears in text or questions: 第三十四条, 第34条, 第 34 条.
ARTICLE_RE = re.compile(rf"第\s*({NUMBER_PATTERN})\s*条")
#: A number followed by 条, with or without 第 (group 1): in questions people also write 民法典1079条. Without 第
#: only the context tells an article from a count (三十三条鱼), so kb.search.query decides which matches are articles.
ARTICLE_NUMBER_RE = re.compile(rf"(第\s*)?({NUMBER_PATTERN})\s*条")


def parse_chinese_number(text: str) -> int:
    """Parse a Chinese or Arabic integer (一千二百六十 → 1260, 十五 → 15, 一〇八 → 108, 34 → 34).

    Raises ValueError on anything else, so callers never silently mis-number an article.
    """
    text = text.strip().translate(_FULLWIDTH)
    if not text:
        raise ValueError("empty numeral")
    if text.isdigit():
        return int(text)
    if any(ch not in _DIGITS and ch not in _UNITS for ch in text):
        raise ValueError(f"not a Chinese numeral: {text!r}")
    if not any(ch in _UNITS for ch in text):  # digit-by-digit form: 一〇八
        return int("".join(str(_DIGITS[ch]) for ch in text))
    value = _parse_with_units(text)
    if value < 10000 and _canonical(text) != _canonical(to_chinese_number(value)):
        raise ValueError(f"malformed Chinese numeral: {text!r}")  # 一二三十, 百百, 三十五四 …
    return value


def _canonical(text: str) -> str:
    """Spelling variants that mean the same number: 两/二, 〇/零, 一十/十."""
    return text.replace("两", "二").replace("〇", "零").replace("一十", "十")


def _parse_with_units(text: str) -> int:
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch == "万":
            section += digit or 0
            total += (section or 1) * 10000
            section, digit = 0, None
        else:
            unit = _UNITS[ch]
            section += (digit or 1) * unit  # 十 and 零十 mean 一十
            digit = None
    return total + section + (digit or 0)


_SMALL = "零一二三四五六七八九"


def to_chinese_number(n: int) -> str:
    """Inverse of parse_chinese_number for 1..9999, in the statute style (十五, 一百零五, 一千二百六十)."""
    if not 0 < n < 10000:
        raise ValueError(f"out of range: {n}")
    parts: list[str] = []
    zero_pending = False
    for unit_value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // unit_value % 10
        if digit == 0:
            zero_pending = bool(parts)
            continue
        if zero_pending:
            parts.append("零")
            zero_pending = False
        parts.append(_SMALL[digit] + unit)
    text = "".join(parts)
    return text[1:] if text.startswith("一十") else text


def article_label(n: int) -> str:
    return f"第{to_chinese_number(n)}条"
