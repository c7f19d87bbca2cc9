"""Can the knowledge base answer this question at all? A logistic model of three kinds of evidence.

- how close in meaning the nearest passage is (the best cosine, with the model's own question vector);
- how many of the question's words (idf-weighted) the passages share;
- what the question is about: a weight vector over the question's own embedding. Questions close to the
  documents' topics but outside them — 办理身份证, 驾照扣分, a township's phone number — sit near the answerable
  ones by the first two measures; the direction of the question's vector tells them apart.

A fixed cosine threshold does not work: this model's cosines bunch between 0.8 and 0.95 for any text. The
weights are fitted on training questions only (bench/calibrate_answerable.py, which writes
kb/answers/answer_models/<model fingerprint>.json; JSON, never pickled). Another embedding model gets the first two
terms only, with AnswerParams' constants.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kb.config import AnswerParams
from kb.search.rank import read_learnt

ANSWER_MODELS_DIR = Path(__file__).resolve().parent / "answer_models"


@dataclass
class AnswerModel:
    bias: float
    w_dense: float  # per 0.01 of the best cosine above dense_centre
    w_cover: float  # per 0.25 of the question's words found in the passages above half
    dense_centre: float
    w_vector: np.ndarray | None = None  # over the question's own unit vector
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: AnswerParams) -> AnswerModel:
        return cls(params.bias, params.w_dense, params.w_cover, params.dense_centre)

    @classmethod
    def for_model(cls, fingerprint: str, directory: Path = ANSWER_MODELS_DIR) -> AnswerModel | None:
        """The shipped model for this embedding model, or None."""
        raw = read_learnt(directory, fingerprint)
        if raw is None:
            return None
        return cls(float(raw["bias"]), float(raw["w_dense"]), float(raw["w_cover"]), float(raw["dense_centre"]),
                   np.array(raw["w_vector"], dtype=np.float32) if raw.get("w_vector") else None, raw.get("meta", {}))

    def logit(self, top_dense: float, coverage: float, vector: np.ndarray | None) -> float:
        x = self.bias + self.w_dense * (top_dense - self.dense_centre) * 100 + self.w_cover * (coverage - 0.5) * 4
        if self.w_vector is not None and vector is not None:
            x += float(np.ravel(vector) @ self.w_vector)
        return x

    def confidence(self, top_dense: float, coverage: float, vector: np.ndarray | None) -> float:
        """0–1; the answer stage answers at AnswerParams.threshold (0.5) and above."""
        x = self.logit(top_dense, coverage, vector)
        if not math.isfinite(x):
            return 0.0  # a damaged index must never make an answer look certain
        return 1 / (1 + math.exp(-max(-60.0, min(60.0, x))))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"bias": round(self.bias, 6), "w_dense": round(self.w_dense, 6), "w_cover": round(self.w_cover, 6),
                "dense_centre": self.dense_centre,
                "w_vector": [float(f"{v:.5g}") for v in (self.w_vector if self.w_vector is not None else [])],
                "meta": self.meta}
        path.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
