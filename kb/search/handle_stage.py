"""The handle stage: after the ranker, the questions attached to passages (kb/stores/handles.py) weigh in.

A linear stage weighs the ranker's verdict against how alike the question is to each candidate's handles, the
handles' vote for its document, and the law router's (kb/search/router.py); its weights are learnt on real
questions (bench/train_handles.py).
"""

from __future__ import annotations

import numpy as np

from kb.search.rank import rank_score, unit_scaled

#: What the handle stage weighs: the second stage's score (as a gap to the best candidate's), how alike the
#: question is to each candidate's handles, the nearest handles' vote for the candidate's document, and the
#: law router's probability for it, and whether it has handles at all (the bank's held-out 15 % of articles, and
#: documents added without questions, have none). Learnt by bench/train_handles.py on real questions.
HANDLE_FEATURES = ("ranker_gap", "handle_cosine", "handle_gap", "handle_rank", "handle_bm25_share", "law_share",
                   "router_share", "has_handles")
ROUTER_FEATURE = HANDLE_FEATURES.index("router_share")


def handle_features(ranker_scores: np.ndarray, cosine: np.ndarray, bm25: np.ndarray, law_share: np.ndarray,
                    router_share: np.ndarray, has_handles: np.ndarray) -> np.ndarray:
    """(candidates × HANDLE_FEATURES): the ranker's verdict and the handles' and router's evidence, per candidate."""
    columns = [ranker_scores - ranker_scores.max(), cosine, cosine - cosine.max(), rank_score(cosine),
               unit_scaled(bm25), law_share, router_share, has_handles]
    return np.nan_to_num(np.column_stack(columns).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def router_column(titles: list[str], law_share: np.ndarray, routed: dict[str, float] | None) -> np.ndarray:
    """The router's probability for each candidate's document; the handles' vote where the router does not know
    the document (or there is no router)."""
    if routed is None:
        return law_share
    return np.array([routed.get(title, share) for title, share in zip(titles, law_share.tolist())], dtype=np.float64)
