"""The records that flow from ingest to answers: documents, their citable chunks, and search hits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: The chunker (ingest/chunk.py) this program's indexes must have been cut by. Bump it when chunk boundaries or
#: indexing texts change: an index cut by another chunker is refused at load, and rebuilt by `kb ingest` (or on
#: the first start of `kb serve` for the default index).
CHUNKER_VERSION = 1


@dataclass(frozen=True)
class DatedEvent:
    """One dated line of a law's header, e.g. 2022-02-25 中共中央、国务院发布."""

    date: str  # ISO yyyy-mm-dd
    event: str


@dataclass
class Document:
    doc_id: str
    title: str
    kind: str  # "law" | "report" | "other"
    source: str  # file name relative to the ingested folder
    content_hash: str
    text: str  # the full text as read; chunk spans index into it
    dates: list[DatedEvent] = field(default_factory=list)
    doc_date: str | None = None  # latest promulgation/revision date (or the report's year)


@dataclass
class Chunk:
    """A citable unit: one 条 (or a 款-aligned part of a long 条), or a few sentences of a report."""

    chunk_id: str
    doc_id: str
    seq: int  # order within the document
    section: str  # heading path, e.g. "第四章 信访事项的办理"
    article: str | None  # "第三十四条"
    article_no: int | None
    part: int  # 0 for a whole 条; 1, 2, ... for the parts of a split 条
    start: int  # character span in Document.text
    end: int
    text: str


@dataclass
class Hit:
    """A search result; the same fields in the library, the CLI's JSON and the HTTP API."""

    chunk_id: str
    doc_id: str
    doc_title: str
    doc_kind: str
    doc_date: str | None
    section: str
    article: str | None
    article_no: int | None
    citation: str
    text: str
    score: float
    start: int
    end: int

    def to_dict(self) -> dict:
        return asdict(self)


def citation_for(doc_title: str, article: str | None) -> str:
    """《信访工作条例》第三十四条, or just 《title》 for text without articles."""
    return f"《{doc_title}》{article or ''}"
