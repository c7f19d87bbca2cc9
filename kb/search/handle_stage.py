"""The handle stage: after the ranker, the questions attached to passages (kb/stores/handles.py) weigh in.

A linear stage weighs the ranker's verdict against how alike the question is to each candidate's handles and
the law router's share for its document; its weights are learnt on real questions (bench/train_handles.py).
"""

from __future__ import annotations

import numpy as np

from kb.search.rank import rank_score, unit_scaled

#: What the handle stage weighs: the second stage's score (as a gap to the best candidate's), how alike the
#: question is to each candidate's handles, and the router's share for the candidate's document. Learnt by
#: bench/train_handles.py on real questions.
HANDLE_FEATURES = ("ranker_gap", "handle_cosine", "handle_gap", "handle_rank", "handle_bm25_share", "law_share")


def handle_features(ranker_scores: np.ndarray, cosine: np.ndarray, bm25: np.ndarray,
                    law_share: np.ndarray) -> np.ndarray:
    """(candidates × HANDLE_FEATURES): the ranker's verdict and the handles' evidence, per candidate."""
    columns = [ranker_scores - ranker_scores.max(), cosine, cosine - cosine.max(), rank_score(cosine),
               unit_scaled(bm25), law_share]
    return np.nan_to_num(np.column_stack(columns).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
