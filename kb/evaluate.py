"""Retrieval metrics over a question set with gold citations (format: ../shared/eval/README.md).

Per answerable question: Hit@k = 1 if a top-k hit matches; MRR@10 = 1/rank of the first match in the top 10.
A hit matches when its document title contains `doc` and its article is in `articles` (laws), or its text
contains one of `contains` (documents without articles).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from kb.errors import KnowledgeBaseError
from kb.schema import Hit

DEPTH = 10


@dataclass(frozen=True)
class GoldQuestion:
    id: str
    q: str
    tag: str
    answerable: bool
    doc: str | None
    articles: tuple[int, ...]
    contains: tuple[str, ...]
    #: A finer label some sets carry (e.g. the near-domain set: township_fact, wrong_year …).
    kind: str | None = None
    #: Earlier questions of the same conversation, oldest first (follow-up sets; empty for single questions).
    history: tuple[str, ...] = ()

    def matches(self, hit: Hit) -> bool:
        if not self.doc or self.doc not in hit.doc_title:
            return False
        if self.articles:
            return hit.article_no in self.articles
        return any(s in hit.text for s in self.contains)


class EvalFileError(KnowledgeBaseError):
    pass


def load_questions(path: Path) -> list[GoldQuestion]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            questions.append(GoldQuestion(
                id=str(raw.get("id", number)), q=raw["q"], tag=raw.get("tag", "untagged"),
                answerable=bool(raw.get("answerable", True)), doc=raw.get("doc"),
                articles=tuple(int(a) for a in raw.get("articles", [])), contains=tuple(raw.get("contains", [])),
                kind=raw.get("kind"), history=tuple(str(h) for h in raw.get("history", [])),
            ))
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalFileError(f"{path}:{number}: not a question line ({exc})") from exc
    return questions


def first_match_rank(question: GoldQuestion, hits: list[Hit]) -> int | None:
    return next((rank for rank, hit in enumerate(hits[:DEPTH], start=1) if question.matches(hit)), None)


def score(questions: Iterable[GoldQuestion], search: Callable[[str], list[Hit]]) -> dict:
    """Metrics per tag and overall for the answerable questions, plus each question's outcome."""
    per_tag: dict[str, list[int | None]] = defaultdict(list)
    details = []
    for question in questions:
        if not question.answerable:
            details.append({"id": question.id, "tag": question.tag, "answerable": False})
            continue
        hits = search(question.q)
        rank = first_match_rank(question, hits)
        per_tag[question.tag].append(rank)
        details.append({"id": question.id, "tag": question.tag, "q": question.q, "rank": rank,
                        "top": hits[0].citation if hits else None})
    summary = {tag: _metrics(ranks) for tag, ranks in sorted(per_tag.items())}
    summary["overall"] = _metrics([r for ranks in per_tag.values() for r in ranks])
    return {"metrics": summary, "questions": details}


def _metrics(ranks: list[int | None]) -> dict:
    n = len(ranks)
    if not n:
        return {"n": 0, "hit@1": 0.0, "hit@5": 0.0, "mrr@10": 0.0}
    return {
        "n": n,
        "hit@1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "hit@5": round(sum(1 for r in ranks if r is not None and r <= 5) / n, 4),
        "mrr@10": round(sum(1 / r for r in ranks if r is not None) / n, 4),
    }


def score_answerability(questions: Iterable[GoldQuestion], is_answerable: Callable[[str], bool]) -> dict:
    """Confusion matrix of the answer stage's decision: answered vs. said it has no answer."""
    matrix = {"answerable_answered": 0, "answerable_refused": 0, "out_of_scope_answered": 0, "out_of_scope_refused": 0}
    mistakes = []
    for question in questions:
        answered = is_answerable(question.q)
        key = ("answerable" if question.answerable else "out_of_scope") + ("_answered" if answered else "_refused")
        matrix[key] += 1
        if answered != question.answerable:
            mistakes.append({"id": question.id, "q": question.q, "answerable": question.answerable})
    return {"matrix": matrix, "mistakes": mistakes}
