"""Retrieval: a question → the passages that best answer it, with the evidence the answer stage weighs.

First stage: dense (FAISS) and lexical (BM25) retrieval each propose candidates, a law the question names is
searched in full, the scores are fused (kb.fuse), and what the question says about where its answer is (a named
law, a request for a list; kb.query) moves candidates up. Second stage (method "ranked", the default): the best
of those are re-ranked by the learned model of kb.rank. A question that cites an article (「民法典第1079条」)
gets that article first, whatever the scores.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kb.config import RetrievalParams
from kb.embed import Embedder
from kb.errors import QueryError
from kb.expand import expand_query
from kb.fuse import fuse
from kb.index_view import Filters, IndexView
from kb.query import QueryAnalysis, analyse
from kb.rank import Candidates, LinearRanker, candidate_features
from kb.schema import Hit

#: How many candidates each retriever contributes before fusion.
CANDIDATES = 200
MAX_TOP_K = 100
#: "ranked" = "weighted" fusion, then the learned second stage; the others are the first stage alone.
METHODS = ("ranked", "weighted", "rrf", "dense", "lexical")
FUSED = ("ranked", "weighted", "rrf")


@dataclass
class FirstStage:
    analysis: QueryAnalysis
    terms: list[str]  # the question's words as BM25 saw them (expanded), that the index knows
    candidates: Candidates
    top_dense: float  # cosine of the best candidate, with the model's own question vector
    cited: np.ndarray  # rows of the article the question cites (kept among the candidates)
    question_vector: np.ndarray  # the model's own vector of the question (what the answer model weighs)


@dataclass
class Retrieval:
    hits: list[Hit]
    top_dense: float  # cosine of the best candidate, with the model's own question vector: how close in meaning the best passage is
    cited_article: bool = False  # the question named a law and an article, and it was found
    #: The model's own vector of the question: what it is about, which the answer model weighs (kb/scope.py).
    question_vector: np.ndarray | None = None


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, in no particular order."""
    if len(scores) <= k:
        return np.arange(len(scores))
    return np.argpartition(-scores, k - 1)[:k]


class Retriever:
    """Searches one IndexView with one embedder; holds no per-question state, so threads may share it."""

    def __init__(self, view: IndexView, embedder: Embedder, params: RetrievalParams) -> None:
        self.view = view
        self.embedder = embedder
        self.params = params
        #: Shipped for the default model's question encoder only; without one, "ranked" is the first stage's order.
        self.ranker = LinearRanker.for_model(embedder.query_fingerprint)

    def retrieve(self, query: str, top_k: int = 5, filters: Filters | None = None,
                 method: str | None = None) -> Retrieval:
        query = (query or "").strip() if isinstance(query, str) else ""
        if not query:
            raise QueryError("问题不能为空")
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            raise QueryError(f"top_k 必须在 1 到 {MAX_TOP_K} 之间")
        if method is not None and method not in METHODS:
            raise QueryError(f"未知的检索方式 {method!r}（可用 {', '.join(METHODS)}）")
        params = self.params if method is None else replace(self.params, method=method)
        stage = self.first_stage(query, filters or Filters(), params)
        if stage is None:
            return Retrieval([], 0.0)
        rows, scores = stage.candidates.rows, stage.candidates.first_stage
        if self.reranks(params):
            scores = self.ranker.score(self.features(query, stage))
        scores, cited = self._put_cited_article_first(rows, scores, stage.cited)
        return Retrieval(self.view.hits(rows, scores, top_k), stage.top_dense, cited, stage.question_vector)

    def reranks(self, params: RetrievalParams) -> bool:
        return params.method == "ranked" and self.ranker is not None

    def first_stage(self, query: str, filters: Filters, params: RetrievalParams) -> "FirstStage | None":
        """Candidates and their scores before any learned ranking; for "ranked", cut to the ones it re-ranks."""
        view = self.view
        if not view.chunks:
            return None
        analysis = analyse(query, view.law_names)
        expanded = expand_query(query)
        text = expanded if params.expand_dense else query
        # Two vectors: the model's own (its cosine says how close the best passage is; the answer stage was
        # calibrated on it) and the tuned encoder's, which ranks better (kb/model/tuning.py).
        plain, tuned = self.embedder.encode_question(text)
        lexical_query = expanded if params.expand_lexical else query
        lexical_scores = np.nan_to_num(view.lexical.scores(lexical_query))
        cited = self.cited_rows(analysis)
        both = self.reranks(params) and self.embedder.tuned  # the second stage weighs both cosines
        rows = self._candidates([tuned, plain] if both else [tuned], lexical_scores, analysis, filters, cited)
        if len(rows) == 0:
            return None
        closest = view.cosines(rows, plain)
        dense = view.cosines(rows, tuned) if self.embedder.tuned else closest
        named = np.isin(view.row_doc[rows], [view.doc_index[d] for d in analysis.law_doc_ids])
        bonus = 0.0
        if params.method in FUSED:
            bonus = params.named_law_bonus * named + params.list_bonus * (analysis.asks_for_list & view.enumerates[rows])
        scores = fuse(dense, lexical_scores[rows], params) + bonus
        keep = np.arange(len(rows))
        if self.reranks(params):  # the best by either vector go on to the second stage, and a cited article
            by_plain = fuse(closest, lexical_scores[rows], params) + bonus
            keep = np.union1d(np.union1d(np.argsort(-scores, kind="stable")[: params.rerank_depth],
                                         np.argsort(-by_plain, kind="stable")[: params.rerank_depth]),
                              np.flatnonzero(np.isin(rows, cited)))
        terms = view.lexical.query_terms(lexical_query)
        coverage = view.lexical.coverage(terms)[rows[keep]] if self.reranks(params) else np.zeros(len(keep))
        candidates = Candidates(rows[keep], closest[keep], dense[keep], lexical_scores[rows[keep]], coverage,
                                scores[keep], named[keep])
        return FirstStage(analysis, terms, candidates, max(0.0, float(closest.max())), cited, plain)

    def features(self, query: str, stage: "FirstStage") -> np.ndarray:
        """The second stage's feature matrix for a first stage's candidates (what bench/train_ranker.py learns)."""
        view = self.view
        return candidate_features(query, stage.candidates, view.chunks, view.documents, view.traits, stage.terms)

    def _candidates(self, query_vectors: list[np.ndarray], lexical_scores: np.ndarray, analysis: QueryAnalysis,
                    filters: Filters, cited: np.ndarray) -> np.ndarray:
        """The best rows of each retriever, every row of a named law and the cited article, within the filters."""
        view = self.view
        allowed = view.filter_mask(filters)
        # Filtered rows are searched among the allowed ones only, so a filter never starves the result list.
        dense_rows = [view.dense_top(vector, CANDIDATES, allowed) for vector in query_vectors]
        pool = np.arange(len(view.chunks)) if allowed is None else np.flatnonzero(allowed)
        lexical_rows = pool[_top(lexical_scores[pool], CANDIDATES)]
        lexical_rows = lexical_rows[lexical_scores[lexical_rows] > 0]
        parts = [*dense_rows, lexical_rows]
        parts += [view.rows_of(doc_id) for doc_id in analysis.law_doc_ids]  # a named law is searched in full
        parts.append(cited)
        rows = np.unique(np.concatenate(parts).astype(np.int64))
        return rows if allowed is None else rows[allowed[rows]]

    def cited_rows(self, analysis: QueryAnalysis) -> np.ndarray:
        """The rows of the article a question cites: 「信访工作条例第三十四条」, or 「第一千零七十九条」 when only
        one law of the knowledge base has that article."""
        by_article, number = self.view.rows_by_article, analysis.article_no
        if number is None:
            return np.zeros(0, dtype=np.int64)
        laws = analysis.law_doc_ids
        if not laws and analysis.lookup:
            holding = [d for d, doc in self.view.documents.items() if doc.kind == "law" and (d, number) in by_article]
            laws = tuple(holding) if len(holding) == 1 else ()
        return np.array([r for d in laws for r in by_article.get((d, number), [])], dtype=np.int64)

    @staticmethod
    def _put_cited_article_first(rows: np.ndarray, scores: np.ndarray, cited: np.ndarray) -> tuple[np.ndarray, bool]:
        """The cited article goes first, whatever the scores. Says whether it was among the rows."""
        first = np.isin(rows, cited)
        if not first.any():
            return scores, False
        top = float(scores.max()) if len(scores) else 0.0
        return np.where(first, top + 1.0, scores), True
