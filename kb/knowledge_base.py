"""The library's front door: open an index, search it. The CLI and the HTTP API only translate to this."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from kb.adapter import QueryAdapter
from kb.answer import Answer, Citation, compose, confidence, term_coverage
from kb.config import AnswerParams, RetrievalParams, Settings, load_settings
from kb.embed import Embedder
from kb.errors import KnowledgeBaseError
from kb.expand import expand_query
from kb.fuse import fuse
from kb.generate import GenerationFailed, GeneratorConfig, generate_answer
from kb.query import LawNames, QueryAnalysis, analyse, enumerates
from kb.schema import Chunk, Document, Hit, citation_for
from kb.store import LoadedIndex, check_model, load_index

log = logging.getLogger(__name__)

#: How many candidates each retriever contributes before fusion.
CANDIDATES = 200
MAX_TOP_K = 100
METHODS = ("weighted", "rrf", "dense", "lexical")


class QueryError(KnowledgeBaseError, ValueError):
    """A question or search parameter the knowledge base cannot take."""


class UnknownDocumentError(KnowledgeBaseError, LookupError):
    """No document (or no such article in it) under the id asked for."""


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, in no particular order."""
    if len(scores) <= k:
        return np.arange(len(scores))
    return np.argpartition(-scores, k - 1)[:k]


@dataclass
class Retrieval:
    hits: list[Hit]
    top_dense: float  # cosine of the best candidate: how close in meaning the best passage is
    cited_article: bool = False  # the question named a law and an article, and it was found


@dataclass(frozen=True)
class Filters:
    """Restrict a search to some documents: by kind (law/report/other), id, or words in the title."""

    doc_kind: str | None = None
    doc_ids: tuple[str, ...] = ()
    title_contains: str | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping | None) -> "Filters":
        raw = dict(raw or {})
        unknown = set(raw) - {"doc_kind", "doc_id", "doc_ids", "title_contains"}
        if unknown:
            raise QueryError(f"未知的过滤条件: {', '.join(sorted(unknown))}（可用 doc_kind、doc_id、title_contains）")
        ids = raw.get("doc_ids") or ([raw["doc_id"]] if raw.get("doc_id") else [])
        return cls(raw.get("doc_kind"), tuple(ids), raw.get("title_contains"))


class KnowledgeBase:
    """A loaded index and the model that made it. Thread-safe for concurrent searches."""

    def __init__(self, index: LoadedIndex, embedder: Embedder, params: RetrievalParams | None = None,
                 answer_params: AnswerParams | None = None, generator: GeneratorConfig | None = None) -> None:
        check_model(index.manifest, embedder.model_id, embedder.fingerprint, embedder.dimension)
        self.index = index
        self.embedder = embedder
        self.params = params or RetrievalParams()
        self.answer_params = answer_params or AnswerParams()
        self.generator = generator
        if self.params.query_adapter not in ("auto", "on", "off"):
            raise KnowledgeBaseError(f"KB_QUERY_ADAPTER must be auto, on or off, not {self.params.query_adapter!r}")
        #: Shipped for the default model only; used as params.query_adapter says.
        self.adapter = QueryAdapter.for_model(embedder.fingerprint, embedder.dimension)
        self._law_count = sum(1 for d in index.documents.values() if d.kind == "law")
        self.chunks = index.chunks
        self.documents = index.documents
        self._vectors = index.dense.reconstruct_n(0, index.dense.ntotal) if index.dense.ntotal else np.zeros(
            (0, embedder.dimension), dtype=np.float32)
        self._law_names = LawNames(list(index.documents.values()))
        self._doc_index = {doc_id: i for i, doc_id in enumerate(index.documents)}
        self._row_doc = np.array([self._doc_index[c.doc_id] for c in self.chunks], dtype=np.int32)
        self._enumerates = np.array([enumerates(c.text) for c in self.chunks], dtype=bool)
        self._rows_by_article: dict[tuple[str, int], list[int]] = {}
        for row, chunk in enumerate(self.chunks):
            if chunk.article_no is not None:
                self._rows_by_article.setdefault((chunk.doc_id, chunk.article_no), []).append(row)

    @classmethod
    def open(cls, index_dir: str | Path | None = None, settings: Settings | None = None,
             embedder: Embedder | None = None) -> "KnowledgeBase":
        settings = settings or load_settings()
        index = load_index(Path(index_dir) if index_dir else settings.index_dir)
        return cls(index, embedder or Embedder(settings), settings.retrieval, settings.answer, settings.generator)

    # -- search ---------------------------------------------------------------------------------------------

    def search(self, query: str, top_k: int = 5, filters: Mapping | Filters | None = None,
               method: str | None = None) -> list[Hit]:
        """The passages that best answer `query`, best first, one hit per 条."""
        return self.retrieve(query, top_k, filters, method).hits

    def retrieve(self, query: str, top_k: int = 5, filters: Mapping | Filters | None = None,
                 method: str | None = None) -> Retrieval:
        """Hits plus the evidence the answer stage weighs (how close in meaning the best passage is)."""
        query = (query or "").strip()
        if not query:
            raise QueryError("问题不能为空")
        if not 1 <= top_k <= MAX_TOP_K:
            raise QueryError(f"top_k 必须在 1 到 {MAX_TOP_K} 之间")
        if not self.chunks:
            return Retrieval([], 0.0)
        filters = filters if isinstance(filters, Filters) else Filters.from_mapping(filters)
        if method is not None and method not in METHODS:
            raise QueryError(f"未知的检索方式 {method!r}（可用 {', '.join(METHODS)}）")
        params = self.params if method is None else replace(self.params, method=method)
        analysis = analyse(query, self._law_names)
        expanded = expand_query(query)
        query_vector = self.embedder.encode_queries([expanded if params.expand_dense else query])[0]
        search_vector = query_vector
        if self._uses_adapter(params):
            search_vector = self.adapter.apply(query_vector, params.adapter_strength)
        lexical_scores = self.index.lexical.scores(expanded if params.expand_lexical else query)
        rows = self._candidates(search_vector, lexical_scores, analysis, filters)
        if len(rows) == 0:
            return Retrieval([], 0.0)
        dense = self._vectors[rows] @ search_vector
        # The answer stage was calibrated on the model's own cosines, so it weighs the unadapted one.
        closest = dense if search_vector is query_vector else self._vectors[rows] @ query_vector
        scores = fuse(dense, lexical_scores[rows], params)
        if analysis.law_doc_ids and params.method in ("rrf", "weighted"):
            named = np.isin(self._row_doc[rows], [self._doc_index[d] for d in analysis.law_doc_ids])
            scores = scores + params.named_law_bonus * named
        if analysis.asks_for_list and params.method in ("rrf", "weighted"):
            scores = scores + params.list_bonus * self._enumerates[rows]
        scores, cited = self._put_cited_article_first(rows, scores, analysis)
        return Retrieval(self._hits(rows, scores, top_k), float(closest.max()), cited)

    def _uses_adapter(self, params: RetrievalParams) -> bool:
        if self.adapter is None or params.query_adapter == "off":
            return False
        return params.query_adapter == "on" or self._law_count >= params.adapter_min_laws

    def _candidates(self, query_vector: np.ndarray, lexical_scores: np.ndarray, analysis: QueryAnalysis,
                    filters: Filters) -> np.ndarray:
        """The best rows of each retriever, plus every row of a named law, all within the filters."""
        allowed = self._filter_mask(filters)
        if allowed is None:
            _, found = self.index.dense.search(query_vector.reshape(1, -1), min(len(self.chunks), CANDIDATES))
            dense_rows = found[0][found[0] >= 0]
            pool = np.arange(len(self.chunks))
        else:  # score only the allowed rows, so a filter never starves the result list
            pool = np.flatnonzero(allowed)
            dense_rows = pool[_top(self._vectors[pool] @ query_vector, CANDIDATES)]
        lexical_rows = pool[_top(lexical_scores[pool], CANDIDATES)]
        lexical_rows = lexical_rows[lexical_scores[lexical_rows] > 0]
        parts = [dense_rows, lexical_rows]
        for doc_id in analysis.law_doc_ids:  # a named law is searched in full, however low its scores
            parts.append(np.flatnonzero(self._row_doc == self._doc_index[doc_id]))
        rows = np.unique(np.concatenate(parts).astype(np.int64))
        return rows if allowed is None else rows[allowed[rows]]

    def _filter_mask(self, filters: Filters) -> np.ndarray | None:
        if filters == Filters():
            return None
        ok_docs = np.array([
            (filters.doc_kind is None or doc.kind == filters.doc_kind)
            and (not filters.doc_ids or doc.doc_id in filters.doc_ids)
            and (filters.title_contains is None or filters.title_contains in doc.title)
            for doc in self.documents.values()
        ], dtype=bool)
        return ok_docs[self._row_doc]

    def _put_cited_article_first(self, rows: np.ndarray, scores: np.ndarray,
                                 analysis: QueryAnalysis) -> tuple[np.ndarray, bool]:
        """「信访工作条例第三十四条」: the named law's 第三十四条 goes first. Says whether it was found."""
        if analysis.article_no is None or not analysis.law_doc_ids:
            return scores, False
        cited = {r for d in analysis.law_doc_ids for r in self._rows_by_article.get((d, analysis.article_no), [])}
        if not cited:
            return scores, False
        top = float(scores.max()) if len(scores) else 0.0
        return np.where(np.isin(rows, list(cited)), top + 1.0, scores), True

    def _hits(self, rows: np.ndarray, scores: np.ndarray, top_k: int) -> list[Hit]:
        """Best first, parts of one 条 merged into a single hit that spans the whole 条."""
        hits: list[Hit] = []
        seen: set[tuple[str, int | str]] = set()
        for i in np.argsort(-scores, kind="stable"):
            chunk = self.chunks[int(rows[i])]
            key = (chunk.doc_id, chunk.article_no if chunk.article_no is not None else chunk.chunk_id)
            if key in seen:
                continue
            seen.add(key)
            hits.append(self._hit(chunk, float(scores[i])))
            if len(hits) == top_k:
                break
        return hits

    def _hit(self, chunk: Chunk, score: float) -> Hit:
        doc = self.documents[chunk.doc_id]
        start, end = chunk.start, chunk.end
        if chunk.part:
            parts = [self.chunks[r] for r in self._rows_by_article[(chunk.doc_id, chunk.article_no)]]
            start, end = min(p.start for p in parts), max(p.end for p in parts)
        return Hit(
            chunk_id=chunk.chunk_id, doc_id=doc.doc_id, doc_title=doc.title, doc_kind=doc.kind,
            doc_date=doc.doc_date, section=chunk.section, article=chunk.article, article_no=chunk.article_no,
            citation=citation_for(doc.title, chunk.article), text=doc.text[start:end], score=round(score, 6),
            start=start, end=end,
        )

    # -- answers -----------------------------------------------------------------------------------------------

    def ask(self, question: str, filters: Mapping | Filters | None = None, passages: int | None = None) -> Answer:
        """An extractive answer with [n] citations, or a plain "no answer" when the evidence is weak."""
        started = time.perf_counter()
        params = self.answer_params
        retrieval = self.retrieve(question, passages or params.passages, filters)
        coverage = term_coverage(question, retrieval.hits, self.index.lexical)
        conf = 1.0 if retrieval.cited_article else confidence(retrieval.top_dense, coverage, params)
        answer = compose(question.strip(), retrieval.hits, conf, conf >= params.threshold, params)
        if answer.answerable and self.generator is not None:
            answer = self._generated(answer, retrieval.hits)
        answer.took_ms = round((time.perf_counter() - started) * 1000, 1)
        return answer

    def _generated(self, extractive: Answer, hits: list[Hit]) -> Answer:
        """The chat model's answer when it cites the passages properly; otherwise the extractive one."""
        try:
            text, cited = generate_answer(extractive.question, hits, self.generator)
        except GenerationFailed as exc:
            log.warning("generative answer not used, extractive instead: %s", exc)
            return extractive
        citations = [Citation(n, hits[n - 1]) for n in cited]
        return Answer(extractive.question, True, text, extractive.confidence, citations, mode="generative")

    # -- browsing the documents ----------------------------------------------------------------------------

    def document(self, doc_id: str) -> Document:
        """A document by id; ids are opaque hex strings, so anything else is simply unknown."""
        document = self.documents.get(doc_id) if isinstance(doc_id, str) else None
        if document is None:
            raise UnknownDocumentError(f"没有这个文档: {doc_id!r}")
        return document

    def document_chunks(self, doc_id: str) -> list[Chunk]:
        index = self._doc_index[self.document(doc_id).doc_id]
        return [self.chunks[r] for r in np.flatnonzero(self._row_doc == index)]

    def article(self, doc_id: str, article_no: int) -> Hit:
        """One 条 of a law as a hit (all its parts), for links such as 《信访工作条例》第三十四条."""
        rows = self._rows_by_article.get((self.document(doc_id).doc_id, article_no))
        if not rows:
            raise UnknownDocumentError(f"《{self.documents[doc_id].title}》没有第{article_no}条")
        return self._hit(self.chunks[rows[0]], 1.0)

    # -- what the index holds ---------------------------------------------------------------------------------

    def info(self) -> dict:
        manifest = self.index.manifest
        return {
            "index_dir": str(self.index.path),
            "built_at": manifest.get("built_at"),
            "embedding": manifest.get("embedding"),
            "chunker_version": manifest.get("chunker_version"),
            "documents": [
                {"doc_id": d.doc_id, "title": d.title, "kind": d.kind, "date": d.doc_date, "source": d.source,
                 "chunks": int(np.sum(self._row_doc == i))}
                for i, d in enumerate(self.documents.values())
            ],
            "chunks": len(self.chunks),
        }
