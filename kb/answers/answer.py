"""Extractive answers: the provisions of the best passages that answer the question, each cited [n].

No language model runs offline, so the answer is built from the law's own words (kb/answers/quote.py chooses them):
every quoted piece is a verbatim substring of its cited passage, and its character range is returned for
highlighting. When the evidence is weak the answer says so plainly instead of citing something unrelated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from kb.answers.answerable import AnswerModel
from kb.answers.evidence import Shortfall, shortfall
from kb.answers.generate import GenerationFailed, generate_answer
from kb.answers.quote import Quote, QuoteChooser, paragraphs, words
from kb.answers.related import first_line
from kb.config import AnswerParams, GeneratorConfig
from kb.schema import Hit
from kb.search.conversation import read_together
from kb.search.rank import asked_for, term_coverage
from kb.search.retrieve import Retrieval

log = logging.getLogger(__name__)

RELATED_LEAD = "以下内容与您的问题相关，但不是对它的直接回答，仅供参考："


@dataclass
class Citation:
    n: int
    hit: Hit
    highlights: list[list[int]] = field(default_factory=list)  # [start, end] in hit.text

    def to_dict(self) -> dict:
        return {"n": self.n, **self.hit.to_dict(), "highlights": self.highlights}


@dataclass
class Answer:
    question: str
    answerable: bool
    answer: str
    confidence: float
    citations: list[Citation]
    mode: str = "extractive"
    took_ms: float = 0.0
    #: Where the answer comes from and where a person can help (kb/answers/notice.py); shown on every channel.
    notice: str = ""
    #: For a follow-up, the earlier question it was read with (kb/search/conversation.py); None otherwise.
    follow_up_of: str | None = None
    #: Not the answer, but passages close to it, cited as related (e.g. only 2024's figures for a 2023 question).
    related: bool = False
    #: When the first citation may be wrong, the other candidates (kb/answers/related.py), shown as
    #: 「其他可能相关的条文」.
    related_passages: list[Hit] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["citations"] = [c.to_dict() for c in self.citations]
        out["related_passages"] = [{**h.to_dict(), "first_line": first_line(h)} for h in self.related_passages]
        return out


def confidence(question: str, retrieval: Retrieval, idf: Callable[[str], float], model: AnswerModel) -> float:
    """How sure `model` is that the knowledge base answers `question` from `retrieval` (a cited article: sure)."""
    if retrieval.cited_article:
        return 1.0
    coverage = term_coverage(question, retrieval.hits, idf)
    return model.confidence(retrieval.top_dense, coverage, retrieval.question_vector)


def select_quotes(question: str, hits: list[Hit], params: AnswerParams) -> list[tuple[int, Quote]]:
    """(hit index, quote) pairs: the best provision of the best passage, then of each further passage that is
    nearly as good and adds words of the question the earlier quotes lack (a tangent adds none)."""
    if not hits:
        return []
    chooser = QuoteChooser(question, asked_for(question), params.whole_chars, params.max_quote_chars)
    first = chooser.best(hits[0].text, hits[0].article_no is not None)
    if not first:
        return []
    quotes = [(0, first)]
    covered = words(hits[0].text, first)
    for i, hit in enumerate(hits[1 : params.max_passages], start=1):
        if hit.score < hits[0].score * params.second_passage_ratio:
            break
        quote = chooser.best(hit.text, hit.article_no is not None)
        added = {w for w in chooser.terms & words(hit.text, quote) if len(w) > 1} - covered
        if quote and added:
            quotes.append((i, quote))
            covered |= added
    return quotes


def whole_article(hits: list[Hit]) -> list[tuple[int, Quote]]:
    """The first passage quoted whole, every 款 and 项 in order: what a question citing an article asks to see."""
    pieces = paragraphs(hits[0].text) if hits else []
    return [(0, tuple(pieces))] if pieces else []


def compose(question: str, hits: list[Hit], conf: float, answerable: bool, params: AnswerParams, refusal: str,
            checked: Callable[[str, Hit], Shortfall | None] | None = None, cited_article: bool = False) -> Answer:
    """「根据《A》第N条：……[1]」, then 「另据《B》第M条：……[2]」 for each further passage; the cited passages
    with the quoted ranges highlighted (a cited article: all of it, nothing else); `refusal` when nothing is quoted.
    When `checked(quoted text, first hit)` finds that the passages do not hold what was asked
    (kb/answers/evidence.py), they are shown as related, not as the answer."""
    choose = whole_article(hits) if cited_article else select_quotes(question, hits, params)
    quotes = choose if answerable else []
    if not quotes:
        return Answer(question, False, refusal, round(conf, 3), [])
    citations = []
    parts = []
    for n, (hit_index, quote) in enumerate(quotes, start=1):
        hit = hits[hit_index]
        citations.append(Citation(n, hit, [[start, end] for start, end in quote]))
        lead = "根据" if n == 1 else "另据"
        parts.append(f"{lead}{hit.citation}：{quoted_text(hit.text, quote)}[{n}]")
    text = "\n".join(parts)
    gap = checked("".join(c.hit.text[s:e] for c in citations for s, e in c.highlights), citations[0].hit) \
        if checked else None
    if gap:
        return Answer(question, False, f"{gap.note}{RELATED_LEAD}\n{text}", round(conf, 3), citations, related=True)
    return Answer(question, True, text, round(conf, 3), citations)


def quoted_text(text: str, quote: Quote) -> str:
    """The pieces of a quote, each 款 or 项 on its own line as in the law."""
    return "\n".join(text[start:end] for start, end in quote)


def answer(question: str, retrieval: Retrieval, idf: Callable[[str], float], params: AnswerParams, refusal: str,
           generator: GeneratorConfig | None = None, follow_up_of: str | None = None,
           mentioned: Callable[[str], bool] | None = None, model: AnswerModel | None = None) -> Answer:
    """An extractive answer with [n] citations; the passages as related when they do not hold what was asked
    (a year, a place, a phone number … that `mentioned` and kb/answers/evidence.py check); `refusal` (the
    township's no-answer message, kb/answers/notice.py) when `model` (kb/answers/answerable.py) finds the
    knowledge base cannot answer it. With a chat model configured, its
    answer instead when it cites the passages properly. A follow-up is weighed and quoted as it was understood
    (with the previous question)."""
    read_as = read_together(follow_up_of, question) if follow_up_of else question
    conf = confidence(read_as, retrieval, idf, model or AnswerModel.from_params(params))
    checked = None
    if mentioned is not None and not retrieval.cited_article:
        checked = lambda quoted, hit: shortfall(question, quoted, hit, mentioned)  # noqa: E731
    extractive = compose(read_as.strip(), retrieval.hits, conf, conf >= params.threshold, params, refusal,
                         checked, retrieval.cited_article)
    extractive.question, extractive.follow_up_of = question.strip(), follow_up_of
    if not extractive.answerable or generator is None:
        return extractive
    try:
        text, cited = generate_answer(extractive.question, retrieval.hits, generator)
    except GenerationFailed as exc:
        log.warning("generative answer not used, extractive instead: %s", exc)
        return extractive
    citations = [Citation(n, retrieval.hits[n - 1]) for n in cited]
    return Answer(extractive.question, True, text, extractive.confidence, citations, mode="generative",
                  follow_up_of=follow_up_of)
