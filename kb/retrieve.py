"""Retrieval: a question → the passages that best answer it, with the evidence the answer stage weighs.

Dense (FAISS) and lexical (BM25) retrieval each propose candidates, a law the question names is searched in
full, the scores are fused (kb.fuse), and what the question says about where its answer is (a named law, an
article number, a request for a list; kb.query) moves candidates up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kb.adapter import QueryAdapter
from kb.config import RetrievalParams
from kb.embed import Embedder
from kb.errors import KnowledgeBaseError, QueryError
from kb.expand import expand_query
from kb.fuse import fuse
from kb.index_view import Filters, IndexView
from kb.query import QueryAnalysis, analyse
from kb.schema import Hit

#: How many candidates each retriever contributes before fusion.
CANDIDATES = 200
MAX_TOP_K = 100
METHODS = ("weighted", "rrf", "dense", "lexical")
ADAPTER_MODES = ("auto", "on", "off")


@dataclass
class Retrieval:
    hits: list[Hit]
    top_dense: float  # cosine of the best candidate: how close in meaning the best passage is
    cited_article: bool = False  # the question named a law and an article, and it was found


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, in no particular order."""
    if len(scores) <= k:
        return np.arange(len(scores))
    return np.argpartition(-scores, k - 1)[:k]


class Retriever:
    """Searches one IndexView with one embedder; holds no per-question state, so threads may share it."""

    def __init__(self, view: IndexView, embedder: Embedder, params: RetrievalParams) -> None:
        if params.query_adapter not in ADAPTER_MODES:
            raise KnowledgeBaseError(f"KB_QUERY_ADAPTER must be auto, on or off, not {params.query_adapter!r}")
        self.view = view
        self.embedder = embedder
        self.params = params
        #: Shipped for the default model only; used as params.query_adapter says.
        self.adapter = QueryAdapter.for_model(embedder.fingerprint, embedder.dimension)

    def retrieve(self, query: str, top_k: int = 5, filters: Filters | None = None,
                 method: str | None = None) -> Retrieval:
        query = (query or "").strip() if isinstance(query, str) else ""
        if not query:
            raise QueryError("问题不能为空")
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise QueryError(f"top_k 必须在 1 到 {MAX_TOP_K} 之间")
        if method is not None and method not in METHODS:
            raise QueryError(f"未知的检索方式 {method!r}（可用 {', '.join(METHODS)}）")
        view = self.view
        if not view.chunks:
            return Retrieval([], 0.0)
        params = self.params if method is None else replace(self.params, method=method)
        analysis = analyse(query, view.law_names)
        expanded = expand_query(query)
        query_vector = self.embedder.encode_queries([expanded if params.expand_dense else query])[0]
        search_vector = self.adapter.apply(query_vector, params.adapter_strength) if self.uses_adapter(params) \
            else query_vector
        lexical_scores = np.nan_to_num(view.lexical.scores(expanded if params.expand_lexical else query))
        rows = self._candidates(search_vector, lexical_scores, analysis, filters or Filters())
        if len(rows) == 0:
            return Retrieval([], 0.0)
        dense = view.cosines(rows, search_vector)
        # The answer stage was calibrated on the model's own cosines, so it weighs the unadapted one.
        closest = dense if search_vector is query_vector else view.cosines(rows, query_vector)
        scores = fuse(dense, lexical_scores[rows], params)
        if analysis.law_doc_ids and params.method in ("rrf", "weighted"):
            named = np.isin(view.row_doc[rows], [view.doc_index[d] for d in analysis.law_doc_ids])
            scores = scores + params.named_law_bonus * named
        if analysis.asks_for_list and params.method in ("rrf", "weighted"):
            scores = scores + params.list_bonus * view.enumerates[rows]
        scores, cited = self._put_cited_article_first(rows, scores, analysis)
        return Retrieval(view.hits(rows, scores, top_k), max(0.0, float(closest.max())), cited)

    def uses_adapter(self, params: RetrievalParams) -> bool:
        if self.adapter is None or params.query_adapter == "off":
            return False
        return params.query_adapter == "on" or self.view.law_count >= params.adapter_min_laws

    def _candidates(self, query_vector: np.ndarray, lexical_scores: np.ndarray, analysis: QueryAnalysis,
                    filters: Filters) -> np.ndarray:
        """The best rows of each retriever, plus every row of a named law, all within the filters."""
        view = self.view
        allowed = view.filter_mask(filters)
        # Filtered rows are searched among the allowed ones only, so a filter never starves the result list.
        dense_rows = view.dense_top(query_vector, CANDIDATES, allowed)
        pool = np.arange(len(view.chunks)) if allowed is None else np.flatnonzero(allowed)
        lexical_rows = pool[_top(lexical_scores[pool], CANDIDATES)]
        lexical_rows = lexical_rows[lexical_scores[lexical_rows] > 0]
        parts = [dense_rows, lexical_rows]
        parts += [view.rows_of(doc_id) for doc_id in analysis.law_doc_ids]  # a named law is searched in full
        rows = np.unique(np.concatenate(parts).astype(np.int64))
        return rows if allowed is None else rows[allowed[rows]]

    def _put_cited_article_first(self, rows: np.ndarray, scores: np.ndarray,
                                 analysis: QueryAnalysis) -> tuple[np.ndarray, bool]:
        """「信访工作条例第三十四条」: the named law's 第三十四条 goes first. Says whether it was found."""
        if analysis.article_no is None or not analysis.law_doc_ids:
            return scores, False
        by_article = self.view.rows_by_article
        cited = {r for d in analysis.law_doc_ids for r in by_article.get((d, analysis.article_no), [])}
        if not cited:
            return scores, False
        top = float(scores.max()) if len(scores) else 0.0
        return np.where(np.isin(rows, list(cited)), top + 1.0, scores), True
