"""What to quote from a cited passage: whole provisions, never a list item without the sentence it belongs to.

A citizen reads the quote as the law's answer, so it has to stand on its own. A short article is quoted whole.
A longer one is quoted by the 款 that answers, all of it; a 项 (（一）（二）…) always comes after its stem, the
sentence that says what the items are for (「有下列情形之一的，……：」). A 款 too long to quote is cut to its best
sentence and the one after it. Every piece is an exact character range of the passage, so it can be highlighted.
"""

from __future__ import annotations

import re

from kb.text.tokenize import tokenize
from kb.text.traits import holds

Span = tuple[int, int]
#: A quote: one or more pieces of one passage, in reading order.
Quote = tuple[Span, ...]

_SENTENCE_RE = re.compile(r"[^。！？；;!?\n]+[。！？；;!?]?[”’」』)）]*")
_ARTICLE_PREFIX_RE = re.compile(r"^第[零〇一二两三四五六七八九十百千万0-9]+条[\s　]*")
_ITEM_RE = re.compile(r"[（(][一二三四五六七八九十百零〇]+[)）]")
_BLANK = " \t　\r"


def sentence_spans(text: str) -> list[Span]:
    """Sentences (and 项 lines) of a passage as character ranges, without surrounding whitespace."""
    spans = []
    for match in _SENTENCE_RE.finditer(text):
        start, end = match.start(), match.end()
        while start < end and text[start] in _BLANK:
            start += 1
        prefix = _ARTICLE_PREFIX_RE.match(text, start)
        if prefix:
            start = prefix.end()
        if end - start >= 4:
            spans.append((start, end))
    return spans


def paragraphs(text: str) -> list[Span]:
    """The 款 and 项 of a passage, one per line, without the 第N条 label or surrounding whitespace."""
    spans: list[Span] = []
    offset = 0
    for line in text.split("\n"):
        start, end = offset, offset + len(line)
        offset = end + 1
        while start < end and text[start] in _BLANK:
            start += 1
        while end > start and text[end - 1] in _BLANK:
            end -= 1
        prefix = _ARTICLE_PREFIX_RE.match(text, start)
        if prefix and not spans:
            start = prefix.end()
        if end > start:
            spans.append((start, end))
    return spans


def is_item(text: str, span: Span) -> bool:
    """Whether a paragraph is a 项 of a list: （一）, (二) …"""
    return bool(_ITEM_RE.match(text, span[0]))


def words(text: str, quote: Quote) -> set[str]:
    return {w for start, end in quote for w in tokenize(text[start:end])}


def quote_length(quote: Quote) -> int:
    return sum(end - start for start, end in quote)


class QuoteChooser:
    """Scores the quotable units of passages against one question: shared words, and (counting double) what
    the question asks for present in the unit (a period, an amount, a body …), a little against length."""

    def __init__(self, question: str, asks: list[str], whole_chars: int, max_chars: int) -> None:
        self.terms = set(tokenize(question))
        self.asks = asks
        self.whole_chars = whole_chars
        self.max_chars = max_chars

    def score(self, text: str, quote: Quote) -> float:
        joined = "".join(text[s:e] for s, e in quote)
        shared = len(self.terms & words(text, quote))
        wanted = sum(holds(a, joined) for a in self.asks)
        return (shared + 2 * wanted) / (1 + 0.002 * len(joined))

    def best(self, text: str, article: bool = True) -> Quote:
        """The unit of `text` that best answers the question (the whole passage when it is short). Only an
        article has 项; in a report, 「（四）……」 numbers a heading."""
        units = self.units(text, article)
        if not units:
            return ()
        return max(units, key=lambda unit: self.score(text, unit))  # the first of equals: reading order

    def units(self, text: str, article: bool = True) -> list[Quote]:
        paras = paragraphs(text)
        if not paras:
            return []
        if paras[-1][1] - paras[0][0] <= self.whole_chars:
            return [tuple(paras)]
        units: list[Quote] = []
        i = 0
        while i < len(paras):
            j = i + 1
            if article and not is_item(text, paras[i]):
                while j < len(paras) and is_item(text, paras[j]):
                    j += 1
            if j > i + 1:
                units.append((paras[i], *self._items(text, paras[i + 1 : j])))
            elif paras[i][1] - paras[i][0] <= self.max_chars:
                units.append((paras[i],))
            else:
                units.append(self._sentences(text, paras[i]))
            i = j
        return units

    def _items(self, text: str, items: list[Span]) -> list[Span]:
        """A question that asks for a list (哪些, 哪几种) gets all of it, as far as fits; any other question the
        items that share most of its words (three at most), or, when none does, all of a short list."""
        matching = [] if "list" in self.asks else self._matching_items(text, items)
        if matching:
            return matching
        chosen: list[Span] = []
        for item in items:
            if chosen and quote_length((*chosen, item)) > 2 * self.max_chars:
                break
            chosen.append(item)
        return chosen

    def _matching_items(self, text: str, items: list[Span]) -> list[Span]:
        shared = [len(self.terms & words(text, (item,))) for item in items]
        enough = max(1.0, 0.75 * max(shared, default=0))  # the items that share most, not every passing word
        best = sorted((k for k in range(len(items)) if shared[k] >= enough), key=lambda k: -shared[k])[:3]
        return [items[k] for k in sorted(best)]

    def _sentences(self, text: str, paragraph: Span) -> Quote:
        """The best sentence of a long 款, and the next when both fit: it often finishes the thought."""
        spans = [s for s in sentence_spans(text) if paragraph[0] <= s[0] and s[1] <= paragraph[1]] or [paragraph]
        best = max(spans, key=lambda s: self.score(text, (s,)))
        following = spans.index(best) + 1
        if following < len(spans) and spans[following][1] - best[0] <= self.max_chars:
            return ((best[0], spans[following][1]),)
        return (best,)
