"""Second stage: find a text's title, kind, dates and the role of each line (heading, header, paragraph).

Two layouts are understood. The law Markdown of `corpus/SOURCES.md` (`# title`, dated header lines,
`<!-- INFO END -->`, `##`-headings for 编/章/节; 民法典 repeats that header for each of its parts), and
plain documents as offices write them (.txt, .docx, .pdf): a title line, then headings such as 第一章 …,
一、… or a bare （一）… line. The chunker only ever sees these blocks, whatever the file type was.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from kb.schema import DatedEvent, Document
from kb.text.dates import enacting_lines
from kb.text.numerals import CHINESE_NUMERAL_CHARS

INFO_END = "<!-- INFO END -->"
_N = CHINESE_NUMERAL_CHARS
#: A line that starts an article: 第三条 …, 第3条…; not a sentence about one (第三条规定的…, 第三条、第四条…).
ARTICLE_LINE_RE = re.compile(rf"^第([{_N}]+|[0-9０-９]+)条(?![规的所之至、，,和或及中第])")
_DATE_RE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_DATE_LINE_RE = re.compile(r"^[（(]?\s*\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日.{0,120}$")
_STRUCTURE_HEADING_RE = re.compile(rf"^第[{_N}0-9]+(分编|编|章|节)(?:[\s　]|$)")
_NUMBERED_HEADING_RE = re.compile(rf"^[{_N}]+、")
_BRACKETED_HEADING_RE = re.compile(rf"^[（(][{_N}]+[）)]")
_STRUCTURE_LEVEL = {"编": 1, "分编": 2, "章": 3, "节": 4}
_MAX_HEADING_CHARS = 40
# Never in a title: C0/C1 controls, bidi embeddings, overrides, isolates and marks, zero-width characters.
# A title is shown in answers, citations and the admin's job list, where a U+202E could make an uploaded
# "报告\u202etxt.exe" read "报告exe.txt"; a title comes from a title line or from the file name.
_TITLE_INVISIBLE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


@dataclass(frozen=True)
class Block:
    """One line of the document and what it is. Spans index into the document text."""

    kind: str  # "heading" | "meta" | "para"
    start: int
    end: int
    level: int = 0  # heading depth (smaller is outer)
    label: str = ""  # heading text, cleaned


@dataclass
class ParsedDocument:
    document: Document
    blocks: list[Block]


def clean_heading(text: str) -> str:
    """`## 第二节  监  护` → `第二节 监护`: drop markup, keep one space after the 第X章 label."""
    text = text.strip().lstrip("#").strip()
    tokens = text.split()
    if not tokens:
        return ""
    if _STRUCTURE_HEADING_RE.match(tokens[0] + " ") and len(tokens) > 1:
        return tokens[0] + " " + "".join(tokens[1:])
    return "".join(tokens)


def clean_title(text: str) -> str:
    """A title without invisible characters; a tab between words becomes a space."""
    return _TITLE_INVISIBLE_RE.sub("", text.replace("\t", " ")).strip()


def _lines(text: str) -> list[tuple[int, int, str]]:
    """(start, end, line) for every line, without its newline."""
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, pos + len(line), line))
        pos += len(line) + 1
    return out


def _dated_event(line: str) -> DatedEvent | None:
    match = _DATE_RE.search(line)
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    event = line[match.end() :].strip(" 　（）()")
    return DatedEvent(f"{year:04d}-{month:02d}-{day:02d}", event)


def _markdown_blocks(text: str) -> tuple[str, list[Block]]:
    lines = _lines(text)
    title = next((clean_heading(line) for _, _, line in lines if line.startswith("# ")), "")
    blocks: list[Block] = []
    in_header = False
    # Without the corpus layout's INFO END marker, only dated lines right after the title are header.
    header_ends_at_marker = INFO_END in text
    for start, end, line in lines:
        stripped = line.strip()
        if not stripped or stripped == "\u200b":
            continue
        if in_header and not header_ends_at_marker and not _DATE_LINE_RE.match(stripped):
            in_header = False
        if line.startswith("#"):
            label = clean_heading(line)
            level = len(line) - len(line.lstrip("#"))
            if level == 1 and label == title:
                in_header = True  # the title, possibly repeated before each part (民法典)
                blocks.append(Block("meta", start, end, label=label))
            else:
                blocks.append(Block("heading", start, end, level, label))
        elif stripped == INFO_END:
            in_header = False
            blocks.append(Block("meta", start, end))
        elif stripped.startswith("<!--") and stripped.endswith("-->"):
            blocks.append(Block("meta", start, end))  # markup such as <!-- FORCE BREAK -->
        elif in_header:
            blocks.append(Block("meta", start, end))
        else:
            blocks.append(Block("para", start, end))
    return title, blocks


def _plain_heading(line: str) -> tuple[int, str] | None:
    """Recognise 第一章 …, 一、… and bare （一）… headings in office documents."""
    stripped = line.strip()
    if len(stripped) > _MAX_HEADING_CHARS or stripped.rstrip("。").count("。"):
        return None
    structure = _STRUCTURE_HEADING_RE.match(stripped)
    if structure:
        return _STRUCTURE_LEVEL[structure.group(1)], clean_heading(stripped)
    if _NUMBERED_HEADING_RE.match(stripped):
        return 5, stripped
    if _BRACKETED_HEADING_RE.match(stripped) and not stripped.endswith("。"):
        return 6, stripped
    return None


def _plain_blocks(text: str, fallback_title: str) -> tuple[str, list[Block]]:
    lines = [(s, e, line) for s, e, line in _lines(text) if line.strip() and line.strip() != "\u200b"]
    title = fallback_title
    blocks: list[Block] = []
    if lines:
        first = lines[0][2].strip()
        if len(first) <= 60 and not first.endswith(("。", "；", "：")) and not ARTICLE_LINE_RE.match(first):
            title = first
            blocks.append(Block("meta", lines[0][0], lines[0][1], label=title))
            lines = lines[1:]
    in_header = True  # dated lines right after the title belong to the header
    for start, end, line in lines:
        if in_header and _DATE_LINE_RE.match(line.strip()):
            blocks.append(Block("meta", start, end))
            continue
        in_header = False
        heading = _plain_heading(line)
        if heading:
            blocks.append(Block("heading", start, end, heading[0], heading[1]))
        else:
            blocks.append(Block("para", start, end))
    return title, blocks


def _kind(title: str, text: str, blocks: list[Block]) -> str:
    articles = sum(1 for b in blocks if b.kind == "para" and ARTICLE_LINE_RE.match(text[b.start : b.end]))
    if articles >= 3:
        return "law"
    return "report" if "报告" in title else "other"


def _doc_date(title: str, dates: list[DatedEvent]) -> str | None:
    """Latest promulgation or revision date; 施行 (entry into force) only when nothing else is given."""
    enacted = [d.date for d in enacting_lines(dates)]
    if enacted or dates:
        return max(enacted or [d.date for d in dates])
    year = re.search(r"(\d{4})\s*年", title)
    return year.group(1) if year else None


def doc_id_for(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


def parse_document(text: str, source: str, is_markdown: bool) -> ParsedDocument:
    """Turn a read text into a Document with its line blocks. `source` names it in the index."""
    stem = Path(source).stem
    if is_markdown:
        title, blocks = _markdown_blocks(text)
    else:
        title, blocks = _plain_blocks(text, stem)
    title = clean_title(title) or clean_title(stem)
    dates = [e for b in blocks if b.kind == "meta" for e in [_dated_event(text[b.start : b.end])] if e]
    document = Document(
        doc_id=doc_id_for(source),
        title=title,
        kind=_kind(title, text, blocks),
        source=source,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        text=text,
        dates=dates,
        doc_date=_doc_date(title, dates),
    )
    return ParsedDocument(document, blocks)
