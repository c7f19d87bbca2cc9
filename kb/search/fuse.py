"""Combining the dense and lexical scores of the same candidates into one ranking.

Two methods, chosen between by measurement (docs/retrieval.md): reciprocal-rank fusion, which only looks at
ranks, and a weighted sum of scores scaled to [0, 1] within the candidates.
"""

from __future__ import annotations

import numpy as np

from kb.config import RetrievalParams


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1 for the best score; ties share the better rank (1 + how many scores are strictly higher)."""
    descending = np.sort(-scores)
    return (np.searchsorted(descending, -scores, side="left") + 1).astype(np.float64)


def _unit_scale(scores: np.ndarray) -> np.ndarray:
    low, high = float(scores.min()), float(scores.max())
    return (scores - low) / (high - low) if high > low else np.zeros_like(scores, dtype=np.float64)


def fuse(dense: np.ndarray, lexical: np.ndarray, params: RetrievalParams) -> np.ndarray:
    """Fused scores for candidates given their dense (cosine) and lexical (BM25) scores; higher is better.

    RRF scores are rescaled so that the best possible score is 1, which lets the named-law bonus and the
    answer stage use one scale whichever method is chosen.
    """
    w = params.dense_weight
    if params.method == "dense":
        return dense.astype(np.float64)
    if params.method == "lexical":
        return lexical.astype(np.float64)
    if params.method in ("weighted", "ranked"):
        return w * _unit_scale(dense) + (1 - w) * _unit_scale(lexical)
    if params.method == "rrf":
        lexical_ranks = np.where(lexical > 0, _ranks(lexical), np.inf)  # no matching word: no lexical vote
        fused = w / (params.rrf_k + _ranks(dense)) + (1 - w) / (params.rrf_k + lexical_ranks)
        return fused * (params.rrf_k + 1)
    raise ValueError(f"unknown fusion method {params.method!r}")
