"""Retrieval: a question → the passages that best answer it, with the evidence the answer stage weighs.

The store (kb.stores.base: local files or Milvus) proposes candidates; everything here is the same for both.
First stage: dense (FAISS) and lexical (BM25) retrieval each propose candidates, a law the question names is
searched in full, the scores are fused (kb.search.fuse), and what the question says about where its answer is (a named
law, a request for a list; kb.search.query) moves candidates up. Second stage (method "ranked", the default): the best
of those are re-ranked by the learned model of kb.search.rank, then, where the documents have questions attached
(kb.stores.handles), by how alike the question is to those, weighed against the ranker's verdict by a second learned
model. A question that cites an article (「民法典第1079条」) gets that article first, whatever the scores.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kb.config import RetrievalParams
from kb.embedding.embedder import Embedder
from kb.errors import QueryError
from kb.schema import Hit
from kb.search.expand import expand_query
from kb.search.fuse import fuse
from kb.search.handle_stage import HANDLE_FEATURES, handle_features, router_column
from kb.search.query import QueryAnalysis, analyse
from kb.search.rank import Candidates, LinearRanker, candidate_features
from kb.search.router import LawRouter
from kb.stores.base import Filters, PassageStore, best_hits
from kb.stores.handles import HandleMatch

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
    cited: np.ndarray  # bool per candidate: a passage of the article the question cites
    question_vector: np.ndarray  # the model's own vector of the question (what the answer model weighs)
    handles: HandleMatch | None = None  # how alike the question is to the passages' attached questions
    routed: dict[str, float] | None = None  # the law router's probability per document title


@dataclass
class Retrieval:
    hits: list[Hit]
    #: Cosine of the best candidate, with the model's own question vector: how close in meaning the best passage is.
    top_dense: float
    cited_article: bool = False  # the question named a law and an article, and it was found
    #: The model's own vector of the question: what it is about, which the answer model weighs
    #: (kb/answers/answerable.py).
    question_vector: np.ndarray | None = None


class Retriever:
    """Searches one store with one embedder; holds no per-question state, so threads may share it."""

    def __init__(self, store: PassageStore, embedder: Embedder, params: RetrievalParams) -> None:
        self.store = store
        self.embedder = embedder
        self.params = params
        #: Shipped for the default model's question encoder only; without one, "ranked" is the first stage's order.
        self.ranker = LinearRanker.for_model(embedder.query_fingerprint)
        #: Weighs attached questions against the ranker (bench/train_handles.py); learnt for the model as built.
        self.handle_ranker = LinearRanker.for_model(f"handles-{embedder.fingerprint}", features=HANDLE_FEATURES)
        #: Which document a question is about (kb/search/router.py); one of the handle stage's features.
        self.router = LawRouter.for_model(embedder.fingerprint)

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
        scores = stage.candidates.first_stage
        if self.reranks(params):
            scores = self.second_stage(query, stage)
        scores, cited = self._put_cited_article_first(scores, stage.cited)
        hits = best_hits(self.store, stage.candidates.chunks, scores, top_k)
        return Retrieval(hits, stage.top_dense, cited, stage.question_vector)

    def reranks(self, params: RetrievalParams) -> bool:
        return params.method == "ranked" and self.ranker is not None

    def weighs_handles(self, params: RetrievalParams) -> bool:
        return self.reranks(params) and self.handle_ranker is not None and self.store.handles is not None

    def second_stage(self, query: str, stage: FirstStage) -> np.ndarray:
        """The learned ranking of a first stage's candidates, with their attached questions where there are."""
        assert self.ranker is not None
        scores = self.ranker.score(self.features(query, stage))
        if stage.handles is None or self.handle_ranker is None:
            return scores
        return self.handle_ranker.score(handle_features(scores, *self.handle_evidence(stage)))

    def handle_evidence(self, stage: FirstStage) -> tuple[np.ndarray, ...]:
        """Per candidate: best handle cosine, best handle BM25, the handles' vote and the router's share for its
        document, and whether it has handles."""
        assert stage.handles is not None
        chunks = stage.candidates.chunks
        cosine, bm25, law_share, has_handles = stage.handles.features(chunks)
        titles = [self.store.documents[c.doc_id].title for c in chunks]
        return cosine, bm25, law_share, router_column(titles, law_share, stage.routed), has_handles

    def first_stage(self, query: str, filters: Filters, params: RetrievalParams) -> FirstStage | None:
        """Candidates and their scores before any learned ranking; for "ranked", cut to the ones it re-ranks."""
        store = self.store
        if not store.passage_count():
            return None
        analysis = analyse(query, store.law_names)
        expanded = expand_query(query)
        text = expanded if params.expand_dense else query
        # Two vectors: the model's own (its cosine says how close the best passage is; the answer stage was
        # calibrated on it) and the tuned encoder's, which ranks better (kb/embedding/model/tuning.py).
        plain, tuned = self.embedder.encode_question(text)
        lexical_query = expanded if params.expand_lexical else query
        cited_articles = self.cited_articles(analysis)
        both = self.reranks(params) and self.embedder.tuned  # the second stage weighs both cosines
        handles, handled = None, []
        attached = store.handles if self.weighs_handles(params) else None  # read once: Milvus may swap them
        if attached is not None:
            admitted = None if filters == Filters() else {d for d, doc in store.documents.items()
                                                          if filters.admits(doc)}
            handles = attached.match(plain, query, admitted)
            handled = [(doc_id, target) for doc_id, target in handles.pooled if isinstance(target, int)]
        # A named law is searched in full; the cited article and the articles of the nearest handles take part.
        pool = store.gather([tuned, plain] if both else [tuned], lexical_query, CANDIDATES, filters,
                            analysis.law_doc_ids, cited_articles + handled)
        if len(pool) == 0:
            return None
        closest = pool.cosines(plain)
        dense = pool.cosines(tuned) if self.embedder.tuned else closest
        named = pool.in_documents(analysis.law_doc_ids)
        cited = pool.of_articles(cited_articles)
        bonus: float | np.ndarray = 0.0  # per candidate when the method adds bonuses
        if params.method in FUSED:
            bonus = params.named_law_bonus * named + params.list_bonus * (analysis.asks_for_list & pool.enumerates())
        scores = fuse(dense, pool.bm25, params) + bonus
        keep = np.arange(len(pool))
        if self.reranks(params):  # the best by either vector go on to the second stage, and a cited article
            by_plain = fuse(closest, pool.bm25, params) + bonus
            keep = np.union1d(np.union1d(np.argsort(-scores, kind="stable")[: params.rerank_depth],
                                         np.argsort(-by_plain, kind="stable")[: params.rerank_depth]),
                              np.flatnonzero(cited | pool.of_articles(handled)))
        terms = pool.terms
        candidates = Candidates([pool.chunks[i] for i in keep], closest[keep], dense[keep], pool.bm25[keep],
                                pool.coverage[keep], scores[keep], named[keep], pool.traits[keep])
        routed = self.router.shares(plain) if handles is not None and self.router is not None else None
        return FirstStage(analysis, terms, candidates, max(0.0, float(closest.max())), cited[keep], plain, handles,
                          routed)

    def features(self, query: str, stage: FirstStage) -> np.ndarray:
        """The second stage's feature matrix for a first stage's candidates (what bench/train_ranker.py learns)."""
        return candidate_features(query, stage.candidates, self.store.documents, stage.terms)

    def cited_articles(self, analysis: QueryAnalysis) -> list[tuple[str, int]]:
        """The article a question cites: 「信访工作条例第三十四条」, or 「第一千零七十九条」 when only one law of the
        knowledge base has that article."""
        number = analysis.article_no
        if number is None:
            return []
        laws = analysis.law_doc_ids
        if not laws and analysis.lookup:
            holding = self.store.laws_with_article(number)
            laws = tuple(holding) if len(holding) == 1 else ()
        return [(doc_id, number) for doc_id in laws]

    @staticmethod
    def _put_cited_article_first(scores: np.ndarray, cited: np.ndarray) -> tuple[np.ndarray, bool]:
        """The cited article goes first, whatever the scores. Says whether it was among the candidates."""
        if not cited.any():
            return scores, False
        top = float(scores.max()) if len(scores) else 0.0
        return np.where(cited, top + 1.0, scores), True
