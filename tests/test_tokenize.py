"""kb.text.tokenize: the lexical tokens of Chinese text (jieba search mode, no filler words, no punctuation)."""

from __future__ import annotations

import pytest

from kb.text.tokenize import STOPWORDS, tokenize


def test_stopwords_are_removed() -> None:
    tokens = tokenize("请问我的孩子是否可以申请法律援助？")
    for filler in ("请问", "我", "的", "是否", "可以"):
        assert filler in STOPWORDS
        assert filler not in tokens
    assert {"孩子", "申请"} <= set(tokens)


def test_only_stopwords_give_no_tokens() -> None:
    assert tokenize("请问，有没有？怎么样呢") == []


@pytest.mark.parametrize("word, parts", [
    ("法律援助", {"法律", "援助"}),
    ("中华人民共和国", {"中华", "人民", "共和国"}),
])
def test_search_mode_keeps_the_word_and_its_dictionary_sub_words(word: str, parts: set[str]) -> None:
    tokens = tokenize(f"申请{word}")
    assert word in tokens  # the whole word, for exact matches
    assert parts <= set(tokens)  # and its parts, so 援助 alone still finds 法律援助


def test_punctuation_and_whitespace_are_dropped() -> None:
    tokens = tokenize("信访、投诉。举报！\n（复议）“诉讼”；…… ——   ？")
    assert {"信访", "投诉", "举报", "复议", "诉讼"} <= set(tokens)
    assert all(token.strip() == token and token for token in tokens)
    assert all(any(ch.isalnum() for ch in token) for token in tokens)
    assert tokenize("，。！？、；：“”（）《》…— \t\n") == []


def test_latin_letters_are_lower_cased() -> None:
    tokens = tokenize("在APP上办理ETC业务")
    assert "app" in tokens and "etc" in tokens
    assert not any(ch.isupper() for token in tokens for ch in token)
    assert tokenize("App") == tokenize("APP") == tokenize("app")


def test_numbers_are_tokens() -> None:
    assert "60" in tokenize("自受理之日起60日内办结")


def test_empty_text() -> None:
    assert tokenize("") == []
