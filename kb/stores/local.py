"""The local store (KB_STORE=local, the default): a loaded index directory and the lookups searching needs.

It implements kb.stores.base.PassageStore over kb.stores.index_dir's files: rows by document and article, filters,
dense top-k, BM25, hits. Built once per load and read-only afterwards, so any number of threads can search it.
The passage vectors are kept once, inside the FAISS index: its top-k search is the only dense search path, and
candidates found by the other retrievers are scored against a zero-copy view of the same storage.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from kb.errors import UnknownDocumentError
from kb.schema import Chunk, Document, Hit
from kb.stores.base import Filters, Pool, hit_for
from kb.stores.index_dir import LoadedIndex, stored_vectors
from kb.text.law_names import LawNames
from kb.text.traits import chunk_traits


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, in no particular order."""
    if len(scores) <= k:
        return np.arange(len(scores))
    return np.argpartition(-scores, k - 1)[:k]


class IndexView:
    """What a search reads: chunks, documents, their derived lookups, and the dense index."""

    def __init__(self, index: LoadedIndex) -> None:
        self.index = index
        self.path = index.path
        self.manifest = index.manifest
        self.chunks: list[Chunk] = index.chunks
        self.documents: dict[str, Document] = index.documents
        self.lexical = index.lexical
        self.handles = index.handles
        self.dense: faiss.IndexFlatIP = index.dense
        self.vectors = stored_vectors(self.dense)
        self.law_names = LawNames(list(self.documents.values()))
        self.doc_index = {doc_id: i for i, doc_id in enumerate(self.documents)}
        self.row_doc = np.array([self.doc_index[c.doc_id] for c in self.chunks], dtype=np.int32)
        self.traits = chunk_traits(self.chunks)  # what each passage contains (kb.search.rank)
        self.row_of_chunk = {chunk.chunk_id: row for row, chunk in enumerate(self.chunks)}
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
            # faiss's stubs declare no constructor arguments, but its wrapper takes fields as keywords and keeps
            # the selector alive with the parameters.
            params = faiss.SearchParameters(  # type: ignore[call-arg]
                sel=faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits)))
        k = min(k, len(self.chunks) if allowed is None else int(allowed.sum()))
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        _, found = self.dense.search(np.ascontiguousarray(query_vector.reshape(1, -1), dtype=np.float32), k,
                                     params=params)
        return found[0][found[0] >= 0]

    def gather(self, query_vectors: Sequence[np.ndarray], lexical_query: str, k: int, filters: Filters,
               whole_documents: Sequence[str], articles: Sequence[tuple[str, int]]) -> Pool:
        """The best rows of each retriever, every row of the named documents and articles, within the filters."""
        allowed = self.filter_mask(filters)
        terms = self.lexical.query_terms(lexical_query)
        lexical_scores = np.nan_to_num(self.lexical.term_scores(terms))
        # Filtered rows are searched among the allowed ones only, so a filter never starves the result list.
        parts = [self.dense_top(vector, k, allowed) for vector in query_vectors]
        searched = np.arange(len(self.chunks)) if allowed is None else np.flatnonzero(allowed)
        lexical_rows = searched[_top(lexical_scores[searched], k)]
        parts.append(lexical_rows[lexical_scores[lexical_rows] > 0])
        parts += [self.rows_of(doc_id) for doc_id in whole_documents]
        parts += [np.array(self.rows_by_article.get(article, []), dtype=np.int64) for article in articles]
        rows = np.unique(np.concatenate(parts).astype(np.int64))
        if allowed is not None:
            rows = rows[allowed[rows]]
        coverage = self.lexical.coverage(terms)
        return Pool([self.chunks[r] for r in rows], self.vectors[rows], lexical_scores[rows], coverage[rows],
                    self.traits[rows], terms)

    def passage_vectors(self, chunk_ids: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(chunk_ids), self.vectors.shape[1]), dtype=np.float32)
        for i, chunk_id in enumerate(chunk_ids):
            if (row := self.row_of_chunk.get(chunk_id)) is not None:
                vectors[i] = self.vectors[row]
        return vectors

    # -- filters and lookups ------------------------------------------------------------------------------------

    def filter_mask(self, filters: Filters) -> np.ndarray | None:
        """Allowed rows, or None when nothing is filtered."""
        if filters == Filters():
            return None
        ok_docs = np.array([filters.admits(doc) for doc in self.documents.values()], dtype=bool)
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

    def passage_count(self) -> int:
        return len(self.chunks)

    def query_terms(self, text: str) -> list[str]:
        return self.lexical.query_terms(text)

    def idf(self, term: str) -> float:
        return self.lexical.idf(term)

    def laws_with_article(self, article_no: int) -> list[str]:
        return [d for d, doc in self.documents.items() if doc.kind == "law" and (d, article_no) in self.rows_by_article]

    def article_chunks(self, doc_id: str, article_no: int) -> list[Chunk]:
        return [self.chunks[r] for r in self.rows_by_article.get((doc_id, article_no), [])]

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        return [self.chunks[r] for r in self.rows_of(self.document(doc_id).doc_id)]

    def chunk_counts(self) -> dict[str, int]:
        counts = np.bincount(self.row_doc, minlength=len(self.documents))
        return {doc_id: int(counts[i]) for doc_id, i in self.doc_index.items()}

    def describe(self) -> dict:
        return {"store": "local", "index_dir": str(self.path)}

    def ping(self) -> None:
        """Whether the store answers (for /readyz): a loaded local index always does."""

    def refresh(self) -> bool:
        """A loaded index never changes: a new build is opened as a new store (ServiceState.reload)."""
        return False

    def names(self) -> list[str]:
        """An index directory holds one knowledge base, known by KB_NAME alone: no others to name."""
        return []

    # -- hits ------------------------------------------------------------------------------------------------

    def hit(self, chunk: Chunk, score: float) -> Hit:
        doc = self.documents[chunk.doc_id]
        start, end = chunk.start, chunk.end
        if chunk.part and chunk.article_no is not None:  # parts belong to a split 条, which has a number
            parts = [self.chunks[r] for r in self.rows_by_article[(chunk.doc_id, chunk.article_no)]]
            start, end = min(p.start for p in parts), max(p.end for p in parts)
        return hit_for(doc, chunk, start, end, score)
