"""Lexical tokens for Chinese: jieba's search-mode words, without punctuation and question filler."""

from __future__ import annotations

import logging
import threading

import jieba
import jieba.posseg

jieba.setLogLevel(logging.WARNING)
_init_lock = threading.Lock()
_initialised = False

#: Words that say how a question is asked, not what it is about.
STOPWORDS = frozenset(
    [
        "的", "了", "着", "是", "在", "和", "与", "及", "或", "等", "吗", "呢", "吧", "啊", "呀", "么", "嘛",
        "也", "都", "就", "还", "又", "要", "会", "能", "可以", "可", "该", "应", "应当", "需要", "被", "把",
        "对", "向", "从", "给", "让", "为", "为了", "由", "以", "之", "其", "这", "那", "这个", "那个", "这些",
        "那些", "哪", "哪些", "哪里", "哪个", "什么", "怎么", "怎样", "怎么样", "如何", "多少", "多久", "几",
        "谁", "吗", "是否", "有没有", "是不是", "能不能", "会不会", "可不可以", "请问", "我", "我们", "你",
        "你们", "他", "她", "他们", "自己", "有", "没有", "一个", "一些", "一下", "个",
    ]
)


def _ensure_initialised() -> None:
    """Load jieba's dictionary once, thread-safely (it takes about a second)."""
    global _initialised
    if not _initialised:
        with _init_lock:
            if not _initialised:
                jieba.initialize()
                _initialised = True


def tokenize(text: str) -> list[str]:
    """Search-mode words (信访事项 → 信访, 事项, 信访事项 where the dictionary knows them), lower-cased."""
    _ensure_initialised()
    tokens = []
    for token in jieba.cut_for_search(text):
        token = token.strip().lower()
        if token and token not in STOPWORDS and any(ch.isalnum() for ch in token):
            tokens.append(token)
    return tokens


def words_of(text: str) -> list[str]:
    """The text cut into words in reading order (jieba's default mode), punctuation and spaces dropped."""
    _ensure_initialised()
    return [w for w in (t.strip() for t in jieba.cut(text)) if w and any(ch.isalnum() for ch in w)]


def nouns(text: str) -> list[str]:
    """The nouns of `text` (two characters or more, lower-cased), by jieba's part-of-speech tags: what a
    question is about when it names a thing (护照, 宅基地), as against 「超期了怎么办？」, which names none."""
    _ensure_initialised()
    return [w.word.strip().lower() for w in jieba.posseg.cut(text)
            if w.flag.startswith("n") and len(w.word.strip()) > 1]
