"""Cross-fitting: features and calibration of questions the tuned question encoder has not seen.

The shipped question tuning (bench/train_encoder.py) learnt from the same training questions that the ranker
(bench/train_ranker.py) and the answer model (bench/calibrate_answerable.py) are fitted on: their cosines are
better than any new question's would be. So the questions are cut in two fixed halves, bench.train_encoder
also writes a tuning learnt without each half, and each question is scored with the tuning that has not
seen it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bench.common import WORK
from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase

TUNINGS = WORK / "encoder_tuning"


def half(question: str) -> int:
    """A fixed half (0 or 1) for each question, from its text."""
    return hashlib.sha256(question.encode("utf-8")).digest()[0] % 2


def half_tunings(tunings: Path = TUNINGS) -> list[Path] | None:
    """The two held-out tunings, or None when bench.train_encoder has not written them."""
    paths = [tunings / f"half{k}.safetensors" for k in (0, 1)]
    return paths if all(p.is_file() for p in paths) else None


def cross_fitted(index: Path, shipped: KnowledgeBase, tunings: Path = TUNINGS) -> list[KnowledgeBase] | None:
    """For each half, the knowledge base over `index` whose questions are embedded with the tuning learnt
    without that half; it ranks with the shipped ranker (learnt on cross-fitted features itself)."""
    paths = half_tunings(tunings)
    if paths is None:
        return None
    out = []
    for path in paths:
        kb = KnowledgeBase.open(settings=load_settings(index_dir=index, query_tuning=str(path)))
        kb.retriever.ranker = shipped.retriever.ranker
        out.append(kb)
    return out
