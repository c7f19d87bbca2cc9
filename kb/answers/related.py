"""When unsure, the other candidates: 「其他可能相关的条文」 below an answer.

The first citation is right for about seven questions in ten, but the right article is among the next few far
more often. A citizen who sees them can tap the one that fits. They are shown only when the ranker's margin —
how far its first passage scores above the second — is small enough that the first may well be wrong
(AnswerParams.related_margin, chosen on training questions by `python -m bench.related`), and never for a
question that cites an article or that the knowledge base cannot answer.
"""

from __future__ import annotations

import math

from kb.answers.quote import paragraphs
from kb.schema import Hit

#: How much of an article's first line is shown beside its citation.
FIRST_LINE_CHARS = 40


def margin(hits: list[Hit], follow_up: bool) -> float:
    """How far the first passage scores above the second, in the ranker's units (infinite with one passage).
    A follow-up's scores are the follow-up ranker's shares (a softmax), so their log-ratio is its margin."""
    if len(hits) < 2:
        return math.inf
    first, second = hits[0].score, hits[1].score
    if follow_up:
        return math.log(first / second) if first > 0 and second > 0 else math.inf
    return first - second


def other_passages(cited: list[Hit], hits: list[Hit], limit: int) -> list[Hit]:
    """The best `limit` hits that are not cited already (one per 条)."""
    seen = {hit.chunk_id for hit in cited}
    return [hit for hit in hits if hit.chunk_id not in seen][:limit]


def first_line(hit: Hit) -> str:
    """The article's first 款 (without its 第N条 label), cut to FIRST_LINE_CHARS: enough to tell it apart."""
    pieces = paragraphs(hit.text)
    line = hit.text[pieces[0][0]:pieces[0][1]] if pieces else hit.text.strip()
    return line if len(line) <= FIRST_LINE_CHARS else line[: FIRST_LINE_CHARS - 1] + "…"


def related_passages(answerable: bool, cited_article: bool, cited: list[Hit], hits: list[Hit], follow_up: bool,
                     threshold: float, limit: int) -> list[Hit]:
    """Up to `limit` other candidates when the margin is below `threshold`; none when the answer is sure."""
    if not answerable or cited_article or limit <= 0 or margin(hits, follow_up) >= threshold:
        return []
    return other_passages(cited, hits, limit)
