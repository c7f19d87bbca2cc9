"""Chinese numerals in article numbers: parse_chinese_number, to_chinese_number, article_label."""

from __future__ import annotations

import pytest
from conftest import CORPUS_DIR

from kb.text.numerals import ARTICLE_NUMBER_RE, ARTICLE_RE, article_label, parse_chinese_number, to_chinese_number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("十", 10),
        ("十五", 15),
        ("二十", 20),
        ("三十四", 34),
        ("一百", 100),
        ("一百零五", 105),
        ("一百一十", 110),
        ("一百一十五", 115),
        ("两百", 200),
        ("一千", 1000),
        ("一千零一十", 1010),
        ("一千二百六十", 1260),
        ("一千零二", 1002),
        ("一万零一", 10001),
        ("一〇八", 108),
        ("二〇二二", 2022),
        ("零", 0),
        ("34", 34),
        ("1260", 1260),
        ("３４", 34),  # full-width digits
        (" 五十 ", 50),  # surrounding blanks
    ],
)
def test_parse_chinese_number(text: str, value: int) -> None:
    assert parse_chinese_number(text) == value


@pytest.mark.parametrize(
    ("reference", "value"),
    [("第一千二百六十条", 1260), ("第三十四条", 34), ("第34条", 34), ("第 34 条", 34), ("第３４条", 34), ("第十条", 10)],
)
def test_article_reference_in_text(reference: str, value: int) -> None:
    match = ARTICLE_RE.search(f"请问{reference}是怎么规定的")
    assert match is not None
    assert parse_chinese_number(match.group(1)) == value


@pytest.mark.parametrize(
    ("text", "cited", "value"),
    [("民法典1079条", False, 1079), ("民法典第1079条", True, 1079), ("第 一千零七十九 条", True, 1079),
     ("宪法三十三条", False, 33), ("１４条", False, 14), ("三十三条鱼", False, 33)],
)
def test_article_number_with_or_without_di(text: str, cited: bool, value: int) -> None:
    """ARTICLE_NUMBER_RE finds every number before 条; group 1 says whether 第 marked it as an article."""
    match = ARTICLE_NUMBER_RE.search(text)
    assert match is not None
    assert (bool(match.group(1)), parse_chinese_number(match.group(2))) == (cited, value)


@pytest.mark.parametrize("text", ["借了1079元", "2024年", "第三人", "条例"])
def test_no_article_number_without_tiao(text: str) -> None:
    assert ARTICLE_NUMBER_RE.search(text) is None


@pytest.mark.parametrize("text", ["", "   ", "abc", "第三条", "三条", "3.5", "-1", "十a", "一千二百六十条", "三十 四x"])
def test_invalid_numerals_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_chinese_number(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [(1, "一"), (10, "十"), (15, "十五"), (20, "二十"), (105, "一百零五"), (110, "一百一十"), (1010, "一千零一十"),
     (1260, "一千二百六十"), (2000, "二千"), (9999, "九千九百九十九")],
)
def test_to_chinese_number_statute_style(value: int, text: str) -> None:
    assert to_chinese_number(value) == text


@pytest.mark.parametrize("value", [0, -3, 10000])
def test_to_chinese_number_out_of_range(value: int) -> None:
    with pytest.raises(ValueError):
        to_chinese_number(value)


def test_round_trip_1_to_2000() -> None:
    for n in range(1, 2001):
        text = to_chinese_number(n)
        assert parse_chinese_number(text) == n, (n, text)
        assert article_label(n) == f"第{text}条"


def test_article_label() -> None:
    assert article_label(34) == "第三十四条"
    assert article_label(1260) == "第一千二百六十条"
    assert article_label(10) == "第十条"


def test_every_article_label_in_the_corpus_round_trips() -> None:
    """Each 第X条 written in the laws (headings of articles and cross-references) is what article_label writes."""
    labels: set[str] = set()
    for path in sorted(CORPUS_DIR.glob("*.md")):
        if path.name == "SOURCES.md":
            continue
        for match in ARTICLE_RE.finditer(path.read_text(encoding="utf-8")):
            if not match.group(1).isdigit():
                labels.add(match.group(0))
    assert len(labels) >= 1260  # 民法典 alone has 1260 articles
    mismatched = sorted(label for label in labels if article_label(parse_chinese_number(label[1:-1])) != label)
    assert mismatched == []


@pytest.mark.parametrize("text", ["一二三十", "百百", "三十五四"])
def test_malformed_numerals_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_chinese_number(text)
