"""Question handles: the questions attached to passages (ingest/questions.py), searched beside the passages.

A citizen's story is often nearer to a question someone wrote for an article than to the article's legal
wording. Each handle is one attached question with the passage it belongs to (a law's article, or a chunk of
text without articles), its vector (the question encoder as built: question against question) and its words
(BM25). At search time the handles most like the question bring their passages into the candidate pool, and
how alike they are becomes features of the learned ranking (kb.search.rank) — whose weights are learnt on real
questions, not on the handles themselves (bench/train_ranker.py).

Stored in the index build as handles.json (questions and their passages) and handles.npy (vectors), with a
BM25 index under the prefix `handles_`; an index without them simply has no handles.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.schema import Chunk
from kb.text.lexical import LexicalIndex, read_json

HANDLES_JSON = "handles.json"
HANDLES_VECTORS = "handles.npy"
LEXICAL_PREFIX = "handles_"
_ROWS_SHAPE = [{"q": str, "doc_id": str, "target": (int, str), "form": str}]
#: Handles most like the question that bring their passage into the candidates.
POOL_HANDLES = 20
#: The law router: the handles nearest the question vote for their document, each by exp((cosine − best) / τ).
ROUTER_HANDLES = 50
ROUTER_TEMPERATURE = 0.05


PassageKey = tuple[str, "int | str"]  # (doc_id, article number) or (doc_id, chunk_id) for text without articles


def passage_key(chunk: Chunk) -> PassageKey:
    """What a handle points at: the whole article (every part of a split 条), or one chunk of other text."""
    return (chunk.doc_id, chunk.article_no if chunk.article_no is not None else chunk.chunk_id)


@dataclass(frozen=True)
class Handle:
    question: str
    doc_id: str
    target: int | str  # article number, or chunk_id for text without articles
    form: str = ""

    @property
    def key(self) -> PassageKey:
        return (self.doc_id, self.target)


@dataclass
class HandleMatch:
    """How alike the question is to each passage's handles: the best cosine and the best BM25 per passage."""

    cosine: dict[PassageKey, float]
    bm25: dict[PassageKey, float]
    pooled: list[PassageKey]  # the passages of the handles most like the question, best first
    law_share: dict[str, float]  # the router: which documents the nearest handles belong to (shares sum to 1)

    def features(self, chunks: Sequence[Chunk]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(best handle cosine, best handle BM25, router share of its document, whether it has handles) per
        candidate. A passage without handles gets the lowest cosine any handle got (0 when none) and a 0 in the
        last column: the stage learns on its own what having no handles says, instead of reading it as handles
        that are far from the question (bench/results/train_handles.json: the bank's held-out articles)."""
        floor = min(self.cosine.values(), default=0.0)
        keys = [passage_key(c) for c in chunks]
        return (np.array([self.cosine.get(k, floor) for k in keys], dtype=np.float64),
                np.array([self.bm25.get(k, 0.0) for k in keys], dtype=np.float64),
                np.array([self.law_share.get(c.doc_id, 0.0) for c in chunks], dtype=np.float64),
                np.array([k in self.cosine for k in keys], dtype=np.float64))


class QuestionHandles:
    def __init__(self, handles: list[Handle], vectors: np.ndarray, lexical: LexicalIndex) -> None:
        if len(handles) != len(vectors) or len(handles) != lexical.n_docs:
            raise ValueError(f"question handles disagree: {len(handles)} questions, {len(vectors)} vectors, "
                             f"{lexical.n_docs} lexical rows")
        self.handles = handles
        self.vectors = vectors
        self.lexical = lexical
        self.keys = list(dict.fromkeys(h.key for h in handles))  # the passages that have handles
        position = {key: i for i, key in enumerate(self.keys)}
        self.group = np.array([position[h.key] for h in handles], dtype=np.int64)
        # Handles sorted by passage, and where each passage's run starts: per-passage maxima by one reduceat.
        self.by_passage = np.argsort(self.group, kind="stable")
        self.passage_starts = np.flatnonzero(np.r_[True, np.diff(self.group[self.by_passage]) != 0])

    def __len__(self) -> int:
        return len(self.handles)

    @classmethod
    def build(cls, handles: list[Handle], vectors: np.ndarray) -> QuestionHandles:
        return cls(handles, vectors, LexicalIndex.build([h.question for h in handles]))

    def save(self, directory: Path) -> None:
        rows = [{"q": h.question, "doc_id": h.doc_id, "target": h.target, "form": h.form} for h in self.handles]
        (directory / HANDLES_JSON).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        np.save(directory / HANDLES_VECTORS, np.ascontiguousarray(self.vectors, dtype=np.float32))
        self.lexical.save(directory, LEXICAL_PREFIX)

    @classmethod
    def load(cls, directory: Path) -> QuestionHandles | None:
        """The handles of an index build, or None when it has none."""
        if not (directory / HANDLES_JSON).is_file():
            return None
        rows = read_json(directory / HANDLES_JSON, _ROWS_SHAPE)
        handles = [Handle(r["q"], r["doc_id"], r["target"], r["form"]) for r in rows]
        vectors = np.load(directory / HANDLES_VECTORS, allow_pickle=False)
        return cls(handles, vectors, LexicalIndex.load(directory, LEXICAL_PREFIX))

    def count_by_document(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for handle in self.handles:
            counts[handle.doc_id] = counts.get(handle.doc_id, 0) + 1
        return counts

    def match(self, question_vector: np.ndarray, question: str, allowed_docs: set[str] | None = None) -> HandleMatch:
        """The best handle cosine and BM25 of every passage that has handles, and the passages of the
        POOL_HANDLES handles most like the question (within the allowed documents)."""
        # einsum, not BLAS: a multi-threaded BLAS call this size leaves its threads spinning, and the question
        # encoder (torch, on the same cores) then runs at half speed.
        cosines = np.nan_to_num(np.einsum("ij,j->i", self.vectors, question_vector), nan=-1.0)
        bm25 = np.nan_to_num(self.lexical.scores(question))
        best_cosine = np.maximum.reduceat(cosines[self.by_passage], self.passage_starts).astype(np.float64)
        best_bm25 = np.maximum.reduceat(bm25[self.by_passage], self.passage_starts).astype(np.float64)
        allowed = np.array([allowed_docs is None or key[0] in allowed_docs for key in self.keys], dtype=bool)
        cosine = {self.keys[i]: float(best_cosine[i]) for i in np.flatnonzero(allowed)}
        lexical = {self.keys[i]: float(best_bm25[i]) for i in np.flatnonzero(allowed & (best_bm25 > 0))}
        order = np.argsort(-np.where(allowed, best_cosine, -3.0), kind="stable")[:POOL_HANDLES]
        return HandleMatch(cosine, lexical, [self.keys[int(i)] for i in order if allowed[i]],
                           self._law_shares(cosines, allowed[self.group]))

    def _law_shares(self, cosines: np.ndarray, allowed: np.ndarray) -> dict[str, float]:
        """The router: the documents of the ROUTER_HANDLES handles nearest the question, weighted by closeness."""
        candidates = np.flatnonzero(allowed)
        if not len(candidates):
            return {}
        nearest = candidates[np.argsort(-cosines[candidates], kind="stable")[:ROUTER_HANDLES]]
        votes = np.exp((cosines[nearest] - cosines[nearest].max()) / ROUTER_TEMPERATURE)
        shares: dict[str, float] = {}
        for row, vote in zip(nearest.tolist(), (votes / votes.sum()).tolist()):
            doc_id = self.handles[row].doc_id
            shares[doc_id] = shares.get(doc_id, 0.0) + vote
        return shares
