"""Extractive answers: the sentences of the best passages that answer the question, each cited [n].

No language model runs offline, so the answer is built from the law's own words: every quoted sentence is a
verbatim substring of its cited passage, and its character range is returned for highlighting. When the
evidence is weak the answer says so plainly instead of citing something unrelated.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass, field

from kb.config import AnswerParams
from kb.generate import GenerationFailed, GeneratorConfig, generate_answer
from kb.lexical import LexicalIndex
from kb.retrieve import Retrieval
from kb.schema import Hit
from kb.tokenize import tokenize

log = logging.getLogger(__name__)

_SENTENCE_RE = re.compile(r"[^。！？；;!?\n]+[。！？；;!?]?[”’」』)）]*")
_ARTICLE_PREFIX_RE = re.compile(r"^第[零〇一二两三四五六七八九十百千万0-9]+条[\s　]*")
NO_ANSWER = (
    "抱歉，知识库中没有找到能回答这个问题的内容。本知识库收录信访工作条例、常用法律法规和本镇法治政府建设报告；"
    "其他问题请咨询镇公共法律服务站、拨打12348公共法律服务热线，或向镇政府有关部门咨询。"
)


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
    #: Where the answer comes from and where a person can help (kb/notice.py); shown on every channel.
    notice: str = ""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["citations"] = [c.to_dict() for c in self.citations]
        return out


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences (and 项 lines) of a passage as character ranges, without surrounding whitespace."""
    spans = []
    for match in _SENTENCE_RE.finditer(text):
        start, end = match.start(), match.end()
        while start < end and text[start] in " \t　":
            start += 1
        prefix = _ARTICLE_PREFIX_RE.match(text, start)
        if prefix:
            start = prefix.end()
        if end - start >= 4:
            spans.append((start, end))
    return spans


def term_coverage(question: str, hits: list[Hit], lexical: LexicalIndex) -> float:
    """Share of the question's (idf-weighted) words found in the hits' text, titles and headings."""
    terms = list(dict.fromkeys(tokenize(question)))
    if not terms:
        return 0.0
    evidence = "".join(f"{h.doc_title}{h.section}{h.text}" for h in hits)
    weights = {t: lexical.idf(t) for t in terms}
    return sum(w for t, w in weights.items() if t in evidence) / sum(weights.values())


def confidence(top_dense: float, coverage: float, params: AnswerParams) -> float:
    """0–1: a logistic blend of how close in meaning the best passage is and how many of the words it shares.

    A fixed cosine threshold does not work: this model's cosines bunch between 0.8 and 0.95 for any text.
    """
    if not (math.isfinite(top_dense) and math.isfinite(coverage)):
        return 0.0  # a damaged index must never make an answer look certain
    x = (params.bias + params.w_dense * (top_dense - params.dense_centre) * 100
         + params.w_cover * (coverage - 0.5) * 4)
    return 1 / (1 + math.exp(-x))


def _sentence_score(question_terms: set[str], text: str, span: tuple[int, int]) -> float:
    words = set(tokenize(text[span[0] : span[1]]))
    return len(question_terms & words) / (1 + 0.002 * (span[1] - span[0]))


def select_quotes(question: str, hits: list[Hit], params: AnswerParams) -> list[tuple[int, tuple[int, int]]]:
    """(hit index, sentence span) pairs to quote: the best sentences of the best passage, then of the next."""
    question_terms = set(tokenize(question))
    quotes: list[tuple[int, tuple[int, int]]] = []
    for i, hit in enumerate(hits[: params.max_passages]):
        spans = sentence_spans(hit.text)
        if not spans:
            continue
        ranked = sorted(spans, key=lambda s: -_sentence_score(question_terms, hit.text, s))
        best = ranked[0] if _sentence_score(question_terms, hit.text, ranked[0]) > 0 else spans[0]
        chosen = [best]
        if i == 0 and len(spans) > 1:  # the sentence after the best one often finishes its thought
            following = spans.index(best) + 1
            if following < len(spans) and len(hit.text[best[0] : spans[following][1]]) <= params.max_quote_chars:
                chosen.append(spans[following])
        quotes += [(i, span) for span in sorted(chosen)]
        if i == 0 and len(hits) > 1 and hits[1].score < hit.score * params.second_passage_ratio:
            break
    return quotes


def _merge_adjacent(quotes: list[tuple[int, tuple[int, int]]], hits: list[Hit]) -> list[tuple[int, tuple[int, int]]]:
    """Two sentences that follow each other in one passage are quoted (and highlighted) as one."""
    merged: list[tuple[int, tuple[int, int]]] = []
    for hit_index, (start, end) in quotes:
        if merged and merged[-1][0] == hit_index:
            previous_start, previous_end = merged[-1][1]
            if not hits[hit_index].text[previous_end:start].strip():
                merged[-1] = (hit_index, (previous_start, end))
                continue
        merged.append((hit_index, (start, end)))
    return merged


def compose(question: str, hits: list[Hit], conf: float, answerable: bool, params: AnswerParams) -> Answer:
    """The answer text with [n] markers, and the cited passages with the quoted ranges highlighted."""
    if not answerable or not hits:
        return Answer(question, False, NO_ANSWER, round(conf, 3), [])
    quotes = _merge_adjacent(select_quotes(question, hits, params), hits)
    citations: dict[int, Citation] = {}
    parts: list[str] = []
    for hit_index, (start, end) in quotes:
        citation = citations.setdefault(hit_index, Citation(len(citations) + 1, hits[hit_index]))
        citation.highlights.append([start, end])
        parts.append(f"{hits[hit_index].text[start:end]}[{citation.n}]")
    lead = f"根据{hits[quotes[0][0]].citation}：" if quotes else ""
    return Answer(question, True, lead + "".join(parts), round(conf, 3), list(citations.values()))


def answer(question: str, retrieval: Retrieval, lexical: LexicalIndex, params: AnswerParams,
           generator: GeneratorConfig | None = None) -> Answer:
    """An extractive answer with [n] citations, or a plain "no answer" when the evidence is weak; with a chat
    model configured, its answer instead when it cites the passages properly."""
    coverage = term_coverage(question, retrieval.hits, lexical)
    conf = 1.0 if retrieval.cited_article else confidence(retrieval.top_dense, coverage, params)
    extractive = compose(question.strip(), retrieval.hits, conf, conf >= params.threshold, params)
    if not extractive.answerable or generator is None:
        return extractive
    try:
        text, cited = generate_answer(extractive.question, retrieval.hits, generator)
    except GenerationFailed as exc:
        log.warning("generative answer not used, extractive instead: %s", exc)
        return extractive
    citations = [Citation(n, retrieval.hits[n - 1]) for n in cited]
    return Answer(extractive.question, True, text, extractive.confidence, citations, mode="generative")
