"""What retrieval needs from wherever the passages live: the store interface and the candidate pool it returns.

Two stores implement it, chosen by `KB_STORE`: kb.stores.local.IndexView (the local index directory: FAISS, BM25
arrays and SQLite; the default) and kb.stores.milvus.MilvusStore (Milvus: a server, a cluster, or milvus-lite).
A store is asked once per question for its candidates (`gather`); everything after that (fusion, bonuses, the
learned ranking, hits) is computed from the pool by kb.search.retrieve, the same code whichever store answered.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kb.errors import QueryError
from kb.schema import Chunk, Document, Hit, citation_for
from kb.stores.handles import QuestionHandles
from kb.text.law_names import LawNames
from kb.text.traits import TRAITS

DOC_KINDS = ("law", "report", "other")
DATE_RE = re.compile(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?")  # ASCII digits only: ２０２０ and ٢٠٢٠ are not dates


def real_date(text: str) -> bool:
    """2020, 2020-06 or 2020-06-01 naming a month and a day that exist (not 2024-13-45)."""
    if not DATE_RE.fullmatch(text):
        return False
    year, month, day = [*text.split("-"), "01", "01"][:3]
    try:
        datetime.date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def _valid_text(value: object) -> bool:
    """Text that is valid Unicode (a lone surrogate from JSON's \\ud800 is not)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Filters:
    """Restrict a search to some documents: by kind (law/report/other), id, or words in the title."""

    doc_kind: str | None = None
    doc_ids: tuple[str, ...] = ()
    title_contains: str | None = None
    #: The document's date (latest promulgation or revision; a report's year) from/to, as 2020, 2020-06 or
    #: 2020-06-01; compared to the precision both have. Documents without a date are left out by either.
    date_from: str | None = None
    date_to: str | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping | None) -> Filters:
        """Filters from JSON-like input, checked strictly: a wrong type is the caller's error, never a crash."""
        if raw is not None and not isinstance(raw, Mapping):
            raise QueryError("过滤条件必须是对象，例如 {\"doc_kind\": \"law\"}")
        raw = dict(raw or {})
        unknown = set(raw) - {"doc_kind", "doc_id", "doc_ids", "title_contains", "date_from", "date_to"}
        if unknown:
            raise QueryError(f"未知的过滤条件: {', '.join(sorted(map(str, unknown)))}"
                             "（可用 doc_kind、doc_id、title_contains、date_from、date_to）")
        for name in ("doc_kind", "doc_id", "title_contains", "date_from", "date_to"):
            if raw.get(name) is not None and not _valid_text(raw[name]):
                raise QueryError(f"过滤条件 {name} 必须是文字")
        for name in ("date_from", "date_to"):
            if raw.get(name) is not None and not real_date(raw[name]):
                raise QueryError(f"过滤条件 {name} 应写成 2020、2020-06 或 2020-06-01（真实的年月日）")
        doc_ids = raw.get("doc_ids")
        if doc_ids is not None and (not isinstance(doc_ids, (list, tuple)) or not all(map(_valid_text, doc_ids))):
            raise QueryError("过滤条件 doc_ids 必须是文字列表")
        if raw.get("doc_kind") is not None and raw["doc_kind"] not in DOC_KINDS:
            raise QueryError(f"过滤条件 doc_kind 只能是 {'、'.join(DOC_KINDS)}")
        ids = tuple(doc_ids or ([raw["doc_id"]] if raw.get("doc_id") else []))
        return cls(raw.get("doc_kind"), ids, raw.get("title_contains"), raw.get("date_from"), raw.get("date_to"))

    def admits(self, document: Document) -> bool:
        return ((self.doc_kind is None or document.kind == self.doc_kind)
                and (not self.doc_ids or document.doc_id in self.doc_ids)
                and (self.title_contains is None or self.title_contains in document.title)
                and self._dated_within(document.doc_date))

    def _dated_within(self, date: str | None) -> bool:
        if self.date_from is None and self.date_to is None:
            return True
        if not date:
            return False

        def cut(a: str, b: str) -> tuple[str, str]:
            n = min(len(a), len(b))
            return a[:n], b[:n]

        return ((self.date_from is None or cut(date, self.date_from)[0] >= cut(date, self.date_from)[1])
                and (self.date_to is None or cut(date, self.date_to)[0] <= cut(date, self.date_to)[1]))


@dataclass
class Pool:
    """A question's candidates, position by position: what fusion and the learned ranking read."""

    chunks: list[Chunk]
    vectors: np.ndarray  # (n, dimension) normalised passage vectors
    bm25: np.ndarray  # (n,) BM25 score for the lexical query (0 where no word matches)
    coverage: np.ndarray  # (n,) idf-weighted share of the query's words each passage holds
    traits: np.ndarray  # (n, kb.text.traits.TRAITS) what each passage contains
    terms: list[str]  # the lexical query's words that the index knows (what BM25 and coverage counted)

    def __len__(self) -> int:
        return len(self.chunks)

    def cosines(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine of each passage with the query; a damaged value counts as no similarity."""
        return np.nan_to_num(self.vectors @ query_vector, nan=-1.0, posinf=-1.0, neginf=-1.0)

    def in_documents(self, doc_ids: Sequence[str]) -> np.ndarray:
        wanted = set(doc_ids)
        return np.array([c.doc_id in wanted for c in self.chunks], dtype=bool)

    def of_articles(self, articles: Sequence[tuple[str, int]]) -> np.ndarray:
        wanted = set(articles)
        return np.array([(c.doc_id, c.article_no) in wanted for c in self.chunks], dtype=bool)

    def enumerates(self) -> np.ndarray:
        """Passages that list items (下列…（一）（二）), for 「哪些」 questions."""
        return self.traits[:, TRAITS.index("list")]


class PassageStore(Protocol):
    """Where the passages live. Implementations are safe to share between threads."""

    # Read-only: a store may hold these as attributes (the local index) or compute them (Milvus re-reads them).
    @property
    def documents(self) -> Mapping[str, Document]:
        """Every document's metadata by id. `text` may be empty here (Milvus keeps it apart); `document()` has it."""
        ...

    @property
    def law_names(self) -> LawNames: ...

    @property
    def manifest(self) -> dict:
        """What built the passages: {"embedding": {model_id, fingerprint, dimension}, "built_at", "chunker_version"}."""
        ...

    @property
    def handles(self) -> QuestionHandles | None:
        """Questions attached to passages (kb.stores.handles), or None when the documents have none."""
        ...

    def passage_count(self) -> int: ...

    def ping(self) -> None:
        """Raise StoreUnavailableError when the store cannot be reached now (/readyz asks)."""
        ...

    def refresh(self) -> bool:
        """Take in what other processes published since: True when this store did (Milvus re-reads in place),
        False when it cannot (a loaded local index: open the new build instead)."""
        ...

    def names(self) -> list[str]:
        """Every knowledge base the store's backend holds, sorted (Milvus: one per township); [] when it holds
        only its own (a local index directory)."""
        ...

    def gather(self, query_vectors: Sequence[np.ndarray], lexical_query: str, k: int, filters: Filters,
               whole_documents: Sequence[str], articles: Sequence[tuple[str, int]]) -> Pool:
        """The k best passages by each query vector and by BM25 (words matching), every passage of
        `whole_documents` and of the given (doc_id, article_no) articles, all within the filters; no duplicates,
        in document order."""
        ...

    def query_terms(self, text: str) -> list[str]:
        """The text's words the lexical index knows (unique, in order)."""
        ...

    def passage_vectors(self, chunk_ids: Sequence[str]) -> np.ndarray:
        """(len(chunk_ids), dimension) normalised vectors of the given passages, in that order; a row of zeros
        for an id the store does not hold (no similarity to anything)."""
        ...

    def idf(self, term: str) -> float:
        """How much a word says about what a passage is about: rarer is more; a word the index lacks, the most."""
        ...

    def laws_with_article(self, article_no: int) -> list[str]:
        """Ids of the laws that have an article with this number."""
        ...

    def article_chunks(self, doc_id: str, article_no: int) -> list[Chunk]: ...

    def document(self, doc_id: str) -> Document:
        """A document with its full text; UnknownDocumentError for anything else."""
        ...

    def document_chunks(self, doc_id: str) -> list[Chunk]: ...

    def mentions(self, name: str) -> bool:
        """Whether any document names `name` in its title or text (a place a question asks about)."""
        ...

    def hit(self, chunk: Chunk, score: float) -> Hit:
        """A passage as a search hit; the parts of a split 条 become one hit spanning the whole 条."""
        ...

    def chunk_counts(self) -> dict[str, int]:
        """Passages per document id."""
        ...

    def describe(self) -> dict:
        """Where the store is, for `kb info` and /readyz (an index folder, or a Milvus address and name)."""
        ...


def hit_for(document: Document, chunk: Chunk, start: int, end: int, score: float) -> Hit:
    """The hit for `chunk`, quoting document.text[start:end] (the whole 条 when it was split in parts)."""
    return Hit(
        chunk_id=chunk.chunk_id, doc_id=document.doc_id, doc_title=document.title, doc_kind=document.kind,
        doc_date=document.doc_date, section=chunk.section, article=chunk.article, article_no=chunk.article_no,
        citation=citation_for(document.title, chunk.article), text=document.text[start:end], score=round(score, 6),
        start=start, end=end,
    )


def best_hits(store: PassageStore, chunks: Sequence[Chunk], scores: np.ndarray, top_k: int) -> list[Hit]:
    """Best first, parts of one 条 merged into a single hit that spans the whole 条."""
    hits: list[Hit] = []
    seen: set[tuple[str, int | str]] = set()
    for i in np.argsort(-scores, kind="stable"):
        chunk = chunks[int(i)]
        key = (chunk.doc_id, chunk.article_no if chunk.article_no is not None else chunk.chunk_id)
        if key in seen:
            continue
        seen.add(key)
        hits.append(store.hit(chunk, float(scores[i])))
        if len(hits) == top_k:
            break
    return hits
