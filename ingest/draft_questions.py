"""Draft questions for a new document with a chat model, for staff to review before they attach them.

`kb questions draft DOC` asks the model configured by KB_LLM_BASE_URL (any OpenAI-compatible server) for a
few questions per article (or per passage of text without articles), in the words citizens use, and writes
them to `<stem>.questions.draft.jsonl` beside the document. Ingest never reads a draft: staff edit it, keep what
is right, and rename it to `<stem>.questions.jsonl` (or add questions one by one through the admin API).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from ingest.chunk import chunk_document
from ingest.parse import parse_document
from ingest.questions import MAX_QUESTION_CHARS
from ingest.read import read_source
from kb.answers.generate import chat_completion
from kb.config import GeneratorConfig
from kb.schema import Chunk

DRAFT_SUFFIX = ".questions.draft.jsonl"
QUESTIONS_PER_PASSAGE = 3
SNIPPET_CHARS = 14
SYSTEM_PROMPT = (
    "你帮助乡镇政府整理知识库。给你一段法规条文或政府文件，请写出群众会用来问这段内容的问题。"
    "要像村民、居民自己说话那样：先用一两句话讲自己遇到的事，再提问；也可以是简短的口语问题。"
    "不要照抄原文的词句，不要提条文编号。每行一个问题，不要编号，不要其他说明。"
)
_NUMBERING_RE = re.compile(r"^\s*(?:[0-9０-９]+[.、．)）]|[-*•·]|[（(][0-9一二三四五六七八九十]+[)）])\s*")


def draft_path(document: Path) -> Path:
    return document.with_name(document.stem + DRAFT_SUFFIX)


def _passages(chunks: list[Chunk]) -> list[tuple[dict, str]]:
    """(sidecar key, text) per article — its parts joined — or per chunk of text without articles."""
    articles: dict[int, str] = {}
    others: list[tuple[dict, str]] = []
    for chunk in chunks:
        if chunk.article_no is not None:
            articles[chunk.article_no] = articles.get(chunk.article_no, "") + chunk.text
        else:
            snippet = chunk.text[:SNIPPET_CHARS]
            width = SNIPPET_CHARS
            while sum(snippet in c.text for c in chunks) > 1 and width < len(chunk.text):
                width += SNIPPET_CHARS
                snippet = chunk.text[:width]
            others.append(({"contains": snippet}, chunk.text))
    return [({"articles": [n]}, text) for n, text in sorted(articles.items())] + others


def parse_reply(reply: str, limit: int = QUESTIONS_PER_PASSAGE) -> list[str]:
    """The model's lines as questions: numbering and bullets removed, blanks and overlong lines dropped."""
    questions = []
    for line in reply.splitlines():
        question = _NUMBERING_RE.sub("", line).strip().strip("\"“”")
        if question and len(question) <= MAX_QUESTION_CHARS and question not in questions:
            questions.append(question)
    return questions[:limit]


def draft_questions(document: Path, config: GeneratorConfig,
                    on_passage: Callable[[int, int], None] | None = None) -> tuple[Path, int]:
    """Write the draft file for one document; returns its path and how many questions it holds. A passage the
    model fails on raises kb.answers.generate.GenerationFailed after what was drafted so far is written."""
    source = read_source(document)
    parsed = parse_document(source.text, document.name, document.suffix.lower() == ".md")
    passages = _passages(chunk_document(parsed))
    target = draft_path(document)
    written = 0
    with target.open("w", encoding="utf-8") as out:
        for n, (key, text) in enumerate(passages, start=1):
            messages = [{"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": f"《{parsed.document.title}》\n{text}\n\n"
                                                    f"请写 {QUESTIONS_PER_PASSAGE} 个问题。"}]
            for question in parse_reply(chat_completion(messages, config, temperature=0.7)):
                out.write(json.dumps({"q": question, **key}, ensure_ascii=False) + "\n")
                written += 1
            out.flush()
            if on_passage is not None:
                on_passage(n, len(passages))
    return target, written
