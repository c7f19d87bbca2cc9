"""Third stage: split a parsed document into citable chunks, each labelled with its heading path.

Laws: one chunk per 条 with its 款 and 项; a 条 longer than `max_chars` is split at 款 boundaries, every part
still carrying the 条's number. Text outside articles (a preamble, a report) is cut into a few sentences at a
time, never across a heading nor across a 一是/二是 item. Chunk spans are exact character ranges of the
document text, in order and never overlapping, and together they hold every paragraph character.

Changing where chunks start or end, or what text of them is indexed, changes every index built before: bump
kb.schema.CHUNKER_VERSION with it, so old indexes are rebuilt instead of served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ingest.parse import ARTICLE_LINE_RE, Block, ParsedDocument
from kb.schema import Chunk, Document
from kb.text.numerals import CHINESE_NUMERAL_CHARS, article_label, parse_chinese_number

SECTION_SEPARATOR = " / "
_N = CHINESE_NUMERAL_CHARS
_LEAD_SENTENCE_RE = re.compile(rf"^[（(][{_N}]+[）)][^。！？\n]{{0,60}}[。！？]")
_ITEM_MARKER_RE = re.compile(r"(?:(?<=^)|(?<=[。；;！？]))[一二三四五六七八九十]+是")
_SENTENCE_END_RE = re.compile(r"[。！？；;!?][”’」』)）]*")
_LABEL_END_RE = re.compile(r"[，。；：,;:]")


@dataclass
class _Span:
    start: int
    end: int
    section: str
    article_no: int | None = None
    part: int = 0


@dataclass
class _Headings:
    stack: list[tuple[int, str]] = field(default_factory=list)

    def push(self, block: Block) -> None:
        while self.stack and self.stack[-1][0] >= block.level:
            self.stack.pop()
        self.stack.append((block.level, block.label))

    def path(self, *extra: str) -> str:
        return SECTION_SEPARATOR.join([label for _, label in self.stack if label] + [e for e in extra if e])


def _sentence_groups(text: str, start: int, end: int, target: int) -> list[tuple[int, int]]:
    """Cut text[start:end] after sentence ends into runs of about `target` characters."""
    cuts = [m.end() for m in _SENTENCE_END_RE.finditer(text, start, end)]
    bounds = sorted({c for c in cuts if start < c < end} | {end})
    groups, group_start = [], start
    for i, cut in enumerate(bounds):
        next_cut = bounds[i + 1] if i + 1 < len(bounds) else None
        if next_cut is None or next_cut - group_start > target:
            groups.append((group_start, cut))
            group_start = cut
    return groups


def _item_label(text: str) -> str:
    match = _LABEL_END_RE.search(text)
    label = text[: match.start()] if match else text
    return label[:24]


def _paragraph_spans(text: str, block: Block, headings: _Headings, target: int) -> list[_Span]:
    """A report paragraph: its （一）lead sentence labels it; 一是/二是 items are never mixed."""
    start, end = block.start, block.end
    while start < end and text[start] in " \t　\u200b":
        start += 1
    para = text[start:end]
    lead = _LEAD_SENTENCE_RE.match(para)
    lead_label = lead.group(0).rstrip("。！？") if lead else ""
    lead_end = start + (lead.end() if lead else 0)
    markers = [start + m.start() for m in _ITEM_MARKER_RE.finditer(para)]
    # The lead sentence alone is too short to be useful: it joins the first item.
    item_starts = [block.start] + [m for m in markers if m > lead_end]
    label_at = {m: m for m in item_starts[1:]}  # where each 一是/二是 item's label begins
    if markers and markers[0] <= lead_end:
        label_at[block.start] = markers[0]
    spans: list[_Span] = []
    for i, item_start in enumerate(item_starts):
        item_end = item_starts[i + 1] if i + 1 < len(item_starts) else end
        label = _item_label(text[label_at[item_start] : item_end]) if item_start in label_at else ""
        section = headings.path(lead_label, label)
        for s, e in _sentence_groups(text, item_start, item_end, target):
            spans.append(_Span(s, e, section))
    return spans


def _article_spans(blocks: list[Block], headings: _Headings, article_no: int, max_chars: int) -> list[_Span]:
    """One 条: whole if short enough, else runs of whole 款 of at most `max_chars` each."""
    section = headings.path()
    if blocks[-1].end - blocks[0].start <= max_chars:
        return [_Span(blocks[0].start, blocks[-1].end, section, article_no)]
    runs: list[list[Block]] = [[blocks[0]]]
    for block in blocks[1:]:
        if block.end - runs[-1][0].start > max_chars:
            runs.append([block])
        else:
            runs[-1].append(block)
    return [_Span(r[0].start, r[-1].end, section, article_no, part) for part, r in enumerate(runs, start=1)]


def _spans(parsed: ParsedDocument, max_chars: int, target: int) -> list[_Span]:
    text = parsed.document.text
    headings = _Headings()
    spans: list[_Span] = []
    article: list[Block] = []
    article_no: int | None = None

    def close_article() -> None:
        nonlocal article, article_no
        if article and article_no is not None:
            spans.extend(_article_spans(article, headings, article_no, max_chars))
        article, article_no = [], None

    use_articles = parsed.document.kind == "law"
    for block in parsed.blocks:
        if block.kind == "heading":
            close_article()
            headings.push(block)
        elif block.kind == "para":
            match = ARTICLE_LINE_RE.match(text[block.start : block.end]) if use_articles else None
            if match:
                close_article()
                article, article_no = [block], parse_chinese_number(match.group(1))
            elif article:
                article.append(block)
            else:
                spans.extend(_paragraph_spans(text, block, headings, target))
    close_article()
    return spans


def chunk_document(parsed: ParsedDocument, max_chars: int = 600, target: int = 220) -> list[Chunk]:
    doc = parsed.document
    chunks = []
    for seq, span in enumerate(_spans(parsed, max_chars, target)):
        label = article_label(span.article_no) if span.article_no else None
        chunks.append(Chunk(
            chunk_id=f"{doc.doc_id}-{seq:05d}", doc_id=doc.doc_id, seq=seq, section=span.section,
            article=label, article_no=span.article_no, part=span.part,
            start=span.start, end=span.end, text=doc.text[span.start : span.end],
        ))
    return chunks


def indexing_text(document: Document, chunk: Chunk) -> str:
    """What the embedding model and the lexical index see: the chunk in its context (title, headings)."""
    continued = f"{chunk.article}（续） " if chunk.part > 1 else ""
    return f"《{document.title}》 {chunk.section}\n{continued}{chunk.text}"
