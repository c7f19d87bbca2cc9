"""The law router: which document a question is about, from the question's vector alone.

A story about a contracted field should not end in 民法典's adoption chapter because 民法典 has the most articles
about families and money. The router is a softmax over the knowledge base's documents (keyed by title, so it
survives a re-ingest) of the model's own question vector, learnt from the question bank and the real training
questions (bench/train_router.py; kb/search/rankers/router-<model fingerprint>.json). It is one of the handle
stage's features (kb.search.handle_stage): a document it never learnt (added by a user since) gets the
handles' own vote instead (kb.stores.handles.HandleMatch.law_share).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kb.search.rank import RANKERS_DIR, read_learnt


class LawRouter:
    """P(document | question) = softmax(W · [vector, 1]); W is (dimension + 1) × documents."""

    def __init__(self, titles: list[str], weights: np.ndarray, meta: dict) -> None:
        if weights.ndim != 2 or weights.shape[1] != len(titles) or len(set(titles)) != len(titles):
            raise ValueError(f"a router needs one weight column per distinct document ({len(titles)})")
        self.titles, self.weights, self.meta = titles, weights, meta

    @property
    def dimension(self) -> int:
        return self.weights.shape[0] - 1

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(questions × documents) probabilities for a stack of question vectors."""
        logits = vectors @ self.weights[:-1] + self.weights[-1]
        logits -= logits.max(axis=1, keepdims=True)
        odds = np.exp(logits)
        return odds / odds.sum(axis=1, keepdims=True)

    def shares(self, vector: np.ndarray) -> dict[str, float]:
        """Document title → probability, for one question vector."""
        return dict(zip(self.titles, self.probabilities(vector[None, :].astype(np.float64))[0].tolist()))

    @classmethod
    def for_model(cls, fingerprint: str, directory: Path = RANKERS_DIR) -> LawRouter | None:
        """The router shipped for a model (`router-<fingerprint>.json`), or None (another model: no router)."""
        raw = read_learnt(directory, f"router-{fingerprint}")
        if raw is None:
            return None
        return cls(list(raw["titles"]), np.array(raw["weights"], dtype=np.float64), raw.get("meta", {}))

    def save(self, path: Path) -> None:
        rows = [[float(f"{v:.5g}") for v in row] for row in self.weights.tolist()]
        data = {"titles": self.titles, "weights": rows, "meta": self.meta}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
