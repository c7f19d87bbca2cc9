"""Questions attached to passages (关联问题): a sidecar `<document stem>.questions.jsonl` beside a document.

Each line is one question a citizen or staff member asks that the passage answers, in their words:

    {"q": "我哥离婚了，女方家收的彩礼能要回来吗？", "articles": [1042]}        a law: its article numbers
    {"q": "镇上去年解答了多少法律咨询？", "contains": "解答群众咨询"}            text without articles: a snippet
    {"q": "…", "articles": [1079], "form": "story"}                           form: story | short | staff (optional)

Ingest indexes the questions as extra keys of their passages ("question handles"): a citizen's story is often
nearer to a question written for the article than to the article's legal wording. A bad line is reported with
its file and line number and skipped; every other line and document is still ingested.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kb.schema import Chunk

SIDECAR_SUFFIX = ".questions.jsonl"
MAX_QUESTION_CHARS = 500
FORMS = ("story", "short", "staff")


@dataclass(frozen=True)
class AttachedQuestion:
    """One question of a sidecar, keyed by article numbers or by a snippet of the passage's text."""

    question: str
    articles: tuple[int, ...] = ()
    contains: str = ""
    form: str = ""
    line: int = 0

    def to_json(self) -> dict:
        row: dict = {"q": self.question}
        if self.articles:
            row["articles"] = list(self.articles)
        if self.contains:
            row["contains"] = self.contains
        if self.form:
            row["form"] = self.form
        return row


class SidecarError(ValueError):
    """A line of a sidecar that cannot be used; the message names the file and the line."""


def sidecar_path(document: Path) -> Path:
    """corpus/民法典.md → corpus/民法典.questions.jsonl"""
    return document.with_name(document.stem + SIDECAR_SUFFIX)


def is_sidecar(path: Path) -> bool:
    return path.name.endswith(SIDECAR_SUFFIX)


def parse_question(raw: object, where: str) -> AttachedQuestion:
    """One line's object → an AttachedQuestion, or SidecarError saying what is wrong with it."""
    if not isinstance(raw, dict):
        raise SidecarError(f"{where}: expected a JSON object")
    question = raw.get("q")
    if not isinstance(question, str) or not question.strip():
        raise SidecarError(f"{where}: \"q\" must be a non-empty string")
    if len(question) > MAX_QUESTION_CHARS:
        raise SidecarError(f"{where}: the question is longer than {MAX_QUESTION_CHARS} characters")
    articles = raw.get("articles", [])
    if not isinstance(articles, list) or not all(isinstance(a, int) and not isinstance(a, bool) and a > 0
                                                 for a in articles):
        raise SidecarError(f"{where}: \"articles\" must be a list of article numbers (positive integers)")
    contains = raw.get("contains", "")
    if not isinstance(contains, str):
        raise SidecarError(f"{where}: \"contains\" must be a string")
    if bool(articles) == bool(contains.strip()):
        raise SidecarError(f"{where}: give either \"articles\" or \"contains\" (the passage it answers)")
    form = raw.get("form", "")
    if form and form not in FORMS:
        raise SidecarError(f"{where}: \"form\" must be one of {', '.join(FORMS)}")
    return AttachedQuestion(question.strip(), tuple(articles), contains.strip(), form)


def read_sidecar(path: Path) -> tuple[list[AttachedQuestion], list[SidecarError]]:
    """Every usable question of a sidecar, and an error for each line that is not (blank lines are fine)."""
    questions: list[AttachedQuestion] = []
    errors: list[SidecarError] = []
    try:
        lines = path.read_bytes().decode("utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [SidecarError(f"{path.name}: cannot be read as UTF-8 text ({exc})")]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(SidecarError(f"{where}: not valid JSON ({exc.msg})"))
            continue
        try:
            parsed = parse_question(raw, where)
        except SidecarError as exc:
            errors.append(exc)
            continue
        questions.append(AttachedQuestion(parsed.question, parsed.articles, parsed.contains, parsed.form, number))
    return questions, errors


def passages_for(question: AttachedQuestion, chunks: list[Chunk]) -> list[Chunk]:
    """The chunks of one document that a question is attached to: every part of its articles, or the chunks
    holding its snippet."""
    if question.articles:
        wanted = set(question.articles)
        return [c for c in chunks if c.article_no in wanted]
    return [c for c in chunks if question.contains in c.text]


def attach(questions: list[AttachedQuestion], chunks: list[Chunk], source: str
           ) -> tuple[list[tuple[AttachedQuestion, list[Chunk]]], list[SidecarError]]:
    """Each question with the chunks it belongs to; a question whose article or snippet is not in the
    document is an error naming the sidecar line."""
    attached, errors = [], []
    for question in questions:
        found = passages_for(question, chunks)
        missing = sorted(set(question.articles) - {c.article_no for c in found if c.article_no is not None})
        where = f"{Path(source).stem}{SIDECAR_SUFFIX} line {question.line}"
        if missing:
            errors.append(SidecarError(f"{where}: {source} has no article {', '.join(map(str, missing))}"))
        elif not found:
            errors.append(SidecarError(f"{where}: no passage of {source} contains \"{question.contains}\""))
        else:
            attached.append((question, found))
    return attached, errors
