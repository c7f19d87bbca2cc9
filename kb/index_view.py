"""A loaded index with the views searching needs: rows by document and article, filters, dense top-k, hits.

Built once per load and read-only afterwards, so any number of threads can search it. The passage vectors are
kept once, inside the FAISS index: its top-k search is the only dense search path, and candidates found by the
other retrievers are scored against a zero-copy view of the same storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import faiss
import numpy as np

from kb.errors import QueryError, UnknownDocumentError
from kb.query import LawNames
from kb.rank import TRAITS, chunk_traits
from kb.schema import Chunk, Document, Hit, citation_for
from kb.store import LoadedIndex

DOC_KINDS = ("law", "report", "other")


@dataclass(frozen=True)
class Filters:
    """Restrict a search to some documents: by kind (law/report/other), id, or words in the title."""

    doc_kind: str | None = None
    doc_ids: tuple[str, ...] = ()
    title_contains: str | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping | None) -> "Filters":
        """Filters from JSON-like input, checked strictly: a wrong type is the caller's error, never a crash."""
        if raw is not None and not isinstance(raw, Mapping):
            raise QueryError("过滤条件必须是对象，例如 {\"doc_kind\": \"law\"}")
        raw = dict(raw or {})
        unknown = set(raw) - {"doc_kind", "doc_id", "doc_ids", "title_contains"}
        if unknown:
            raise QueryError(f"未知的过滤条件: {', '.join(sorted(map(str, unknown)))}（可用 doc_kind、doc_id、title_contains）")
        for name in ("doc_kind", "doc_id", "title_contains"):
            if raw.get(name) is not None and not isinstance(raw[name], str):
                raise QueryError(f"过滤条件 {name} 必须是文字")
        doc_ids = raw.get("doc_ids")
        if doc_ids is not None and (not isinstance(doc_ids, (list, tuple)) or not all(isinstance(d, str) for d in doc_ids)):
            raise QueryError("过滤条件 doc_ids 必须是文字列表")
        if raw.get("doc_kind") is not None and raw["doc_kind"] not in DOC_KINDS:
            raise QueryError(f"过滤条件 doc_kind 只能是 {'、'.join(DOC_KINDS)}")
        ids = tuple(doc_ids or ([raw["doc_id"]] if raw.get("doc_id") else []))
        return cls(raw.get("doc_kind"), ids, raw.get("title_contains"))


class _Owned:
    """An array interface that keeps its memory's owner alive: an array made from it holds this as its base."""

    def __init__(self, array: np.ndarray, owner: object) -> None:
        self.__array_interface__ = array.__array_interface__
        self.owner = owner


def _stored_vectors(dense: "faiss.IndexFlatIP") -> np.ndarray:
    """Zero-copy: the vectors FAISS holds, as a read-only array that keeps the FAISS index alive as long as the
    array itself (or any view or slice of it) is used, whatever happens to the IndexView."""
    if not dense.ntotal:
        return np.zeros((0, dense.d), dtype=np.float32)
    raw = faiss.rev_swig_ptr(dense.get_xb(), dense.ntotal * dense.d).reshape(dense.ntotal, dense.d)
    vectors = np.asarray(_Owned(raw, dense))
    vectors.flags.writeable = False
    return vectors


class IndexView:
    """What a search reads: chunks, documents, their derived lookups, and the dense index."""

    def __init__(self, index: LoadedIndex) -> None:
        self.index = index
        self.path = index.path
        self.manifest = index.manifest
        self.chunks: list[Chunk] = index.chunks
        self.documents: dict[str, Document] = index.documents
        self.lexical = index.lexical
        self.dense: faiss.IndexFlatIP = index.dense
        self.vectors = _stored_vectors(self.dense)
        self.law_names = LawNames(list(self.documents.values()))
        self.doc_index = {doc_id: i for i, doc_id in enumerate(self.documents)}
        self.row_doc = np.array([self.doc_index[c.doc_id] for c in self.chunks], dtype=np.int32)
        self.traits = chunk_traits(self.chunks)  # what each passage contains (kb.rank)
        self.enumerates = self.traits[:, TRAITS.index("list")]  # 下列…（一）（二）, for 「哪些」 questions
        self.rows_by_article: dict[tuple[str, int], list[int]] = {}
        for row, chunk in enumerate(self.chunks):
            if chunk.article_no is not None:
                self.rows_by_article.setdefault((chunk.doc_id, chunk.article_no), []).append(row)

    # -- dense retrieval --------------------------------------------------------------------------------------

    def dense_top(self, query_vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """Rows of the k passages closest to the query, among the allowed rows when a mask is given."""
        params = None
        if allowed is not None:
            bits = np.packbits(allowed, bitorder="little")
            params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits)))
        k = min(k, len(self.chunks) if allowed is None else int(allowed.sum()))
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        _, found = self.dense.search(np.ascontiguousarray(query_vector.reshape(1, -1), dtype=np.float32), k,
                                     params=params)
        return found[0][found[0] >= 0]

    def cosines(self, rows: np.ndarray, query_vector: np.ndarray) -> np.ndarray:
        """Cosine of each row's passage with the query; a damaged value counts as no similarity."""
        return np.nan_to_num(self.vectors[rows] @ query_vector, nan=-1.0, posinf=-1.0, neginf=-1.0)

    # -- filters and lookups ------------------------------------------------------------------------------------

    def filter_mask(self, filters: Filters) -> np.ndarray | None:
        """Allowed rows, or None when nothing is filtered."""
        if filters == Filters():
            return None
        ok_docs = np.array([
            (filters.doc_kind is None or doc.kind == filters.doc_kind)
            and (not filters.doc_ids or doc.doc_id in filters.doc_ids)
            and (filters.title_contains is None or filters.title_contains in doc.title)
            for doc in self.documents.values()
        ], dtype=bool)
        return ok_docs[self.row_doc]

    def rows_of(self, doc_id: str) -> np.ndarray:
        return np.flatnonzero(self.row_doc == self.doc_index[doc_id])

    def document(self, doc_id: str) -> Document:
        """A document by id; ids are opaque hex strings, so anything else is simply unknown."""
        document = self.documents.get(doc_id) if isinstance(doc_id, str) else None
        if document is None:
            raise UnknownDocumentError(f"没有这个文档: {doc_id!r}")
        return document

    def mentions(self, name: str) -> bool:
        """Whether any document names `name` in its title or text (a place a question asks about)."""
        return any(name in d.title or name in d.text for d in self.documents.values())

    def article(self, doc_id: str, article_no: int) -> Hit:
        """One 条 of a law as a hit (all its parts)."""
        rows = self.rows_by_article.get((self.document(doc_id).doc_id, article_no))
        if not rows:
            raise UnknownDocumentError(f"《{self.documents[doc_id].title}》没有第{article_no}条")
        return self.hit(self.chunks[rows[0]], 1.0)

    # -- hits ------------------------------------------------------------------------------------------------

    def hits(self, rows: np.ndarray, scores: np.ndarray, top_k: int) -> list[Hit]:
        """Best first, parts of one 条 merged into a single hit that spans the whole 条."""
        hits: list[Hit] = []
        seen: set[tuple[str, int | str]] = set()
        for i in np.argsort(-scores, kind="stable"):
            chunk = self.chunks[int(rows[i])]
            key = (chunk.doc_id, chunk.article_no if chunk.article_no is not None else chunk.chunk_id)
            if key in seen:
                continue
            seen.add(key)
            hits.append(self.hit(chunk, float(scores[i])))
            if len(hits) == top_k:
                break
        return hits

    def hit(self, chunk: Chunk, score: float) -> Hit:
        doc = self.documents[chunk.doc_id]
        start, end = chunk.start, chunk.end
        if chunk.part:
            parts = [self.chunks[r] for r in self.rows_by_article[(chunk.doc_id, chunk.article_no)]]
            start, end = min(p.start for p in parts), max(p.end for p in parts)
        return Hit(
            chunk_id=chunk.chunk_id, doc_id=doc.doc_id, doc_title=doc.title, doc_kind=doc.kind,
            doc_date=doc.doc_date, section=chunk.section, article=chunk.article, article_no=chunk.article_no,
            citation=citation_for(doc.title, chunk.article), text=doc.text[start:end], score=round(score, 6),
            start=start, end=end,
        )
