"""Cross-fitting: features and calibration of questions the tuned question encoder has not seen.

The shipped question tuning (bench/train_encoder.py) learnt from the same training questions that the ranker
(bench/train_ranker.py), the handle stage (bench/train_handles.py) and the answer model
(bench/calibrate_answerable.py) are fitted on: their cosines are better than any new question's would be. So the
questions are cut in FOLDS fixed folds, bench.train_encoder also writes a tuning learnt without each fold, and each
question is scored with the tuning that has not seen it.

Why five folds and not two: a tuning learnt without half of the questions is further from the shipped one,
which learnt from all of them, than one learnt without a fifth, so the models fitted on its cosines trust the
dense score less than they should. Over stard_local_train's 614 questions, dense Hit@1 with the tuning that never
saw each question is 0.476 with folds (bench/results/train_ranker.json; 0.459 with halves, measured once before
the change), and the ranker fitted on the folds' features gives the tuned cosine twice the weight.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bench.common import WORK
from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase

TUNINGS = WORK / "encoder_tuning"
FOLDS = 5


def fold(question: str) -> int:
    """A fixed fold (0 … FOLDS-1) for each question, from its text."""
    return int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:4], "big") % FOLDS


def fold_tunings(tunings: Path = TUNINGS) -> list[Path] | None:
    """The held-out tunings, one per fold, or None when bench.train_encoder has not written them."""
    paths = [tunings / f"fold{k}.safetensors" for k in range(FOLDS)]
    return paths if all(p.is_file() for p in paths) else None


def cross_fitted(index: Path, shipped: KnowledgeBase, tunings: Path = TUNINGS) -> list[KnowledgeBase] | None:
    """For each fold, the knowledge base over `index` whose questions are embedded with the tuning learnt
    without that fold; it ranks with the shipped ranker (learnt on cross-fitted features itself)."""
    paths = fold_tunings(tunings)
    if paths is None:
        return None
    out = []
    for path in paths:
        kb = KnowledgeBase.open(settings=load_settings(index_dir=index, query_tuning=str(path)))
        kb.retriever.ranker = shipped.retriever.ranker
        out.append(kb)
    return out


Question = TypeVar("Question", bound=tuple[str, Any])


def by_fold(folds: list[KnowledgeBase], items: Sequence[Question]) -> Iterator[tuple[KnowledgeBase, list[Question]]]:
    """Each fold's knowledge base with the items (question text first) it must score: those it never saw."""
    for k, fold_kb in enumerate(folds):
        yield fold_kb, [item for item in items if fold(item[0]) == k]
