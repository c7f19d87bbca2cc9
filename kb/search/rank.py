"""Second stage: the first stage's best candidates re-ranked by a learned linear model over cheap features.

The first stage finds the right law; it often quotes the wrong article of it. What tells the answering article
apart is mostly what the question asks for and what the article contains: 「多久」 wants a period (日/月/年),
「罚多少」 an amount, 「找谁」 a body, 「能不能」 a rule (应当/不得/可以), 「什么是」 a definition, 「哪些」 a list;
and articles that state a law's purpose (为了…制定本法) rarely answer anything. Those signals, the dense scores
(with the model's own question vector and with the tuned one, kb/embedding/model/tuning.py), the lexical ones, the
share of the question's words an article holds, and whether the question names its law, are combined by weights
learnt from training questions only (bench/train_ranker.py, which writes
kb/search/rankers/<question encoder's fingerprint>.json).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.schema import Chunk, Document, Hit
from kb.search.query import ASKS_FOR_LIST_RE
from kb.text.tokenize import tokenize
from kb.text.traits import TRAITS

RANKERS_DIR = Path(__file__).resolve().parent / "rankers"

#: What a question asks for, paired with what an answering article contains.
_ASKS = {
    "period": re.compile(r"多久|多长时间|多长期限|几天|几年|几个月|多少天|多少年|期限|时效|什么时候|多长|时限"),
    "amount": re.compile(r"多少钱|几倍|罚多少|赔多少|多少费用|罚款|收费|金额|赔偿多少|补偿多少|多少补偿|工资"),
    "body": re.compile(r"谁|哪个部门|哪个机关|哪里|找谁|向哪|哪一级|什么部门|什么机关|哪个单位|哪些部门|哪些机关"),
    "rule": re.compile(r"要不要|能不能|是否|可不可以|可以吗|能否|会不会|行不行|有没有权|该不该|必须|能吗|可以不"
                       r"|合法吗|违法吗"),
    "definition": re.compile(r"什么是|什么叫|是什么意思|指的是|算不算|属不属于|是不是属于|怎么认定|如何认定"),
    "list": ASKS_FOR_LIST_RE,
}
ASKS = tuple(_ASKS)

FEATURES = (
    "cosine", "cosine_gap", "tuned_gap", "bm25_share", "bm25_log", "coverage", "title_overlap", "named_law",
    "first_stage", "first_stage_gap", "first_stage_rank", "dense_rank", "tuned_rank", "lexical_rank", "length_log",
    "purpose", "report",
    *(f"{a}_asked_and_present" for a in ASKS), *(f"{a}_asked_and_absent" for a in ASKS),
)


def question_asks(question: str) -> np.ndarray:
    """(ASKS,) booleans: what the question asks for."""
    return np.array([bool(_ASKS[a].search(question)) for a in ASKS], dtype=bool)


def asked_for(question: str) -> list[str]:
    """What the question asks for (names from ASKS), e.g. ["period"] for 「多久能办完」."""
    return [a for a, asked in zip(ASKS, question_asks(question)) if asked]


def unit_scaled(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if len(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def rank_score(values: np.ndarray) -> np.ndarray:
    """1 for the best value, falling as 1/log2(rank + 1); ties share the better rank."""
    ranks = np.searchsorted(np.sort(-values), -values, side="left") + 1
    return 1.0 / np.log2(ranks + 1.0)


@dataclass
class Candidates:
    """What the first stage knows about its candidates, row by row, for the features below."""

    chunks: list[Chunk]
    cosine: np.ndarray  # with the model's own question vector
    tuned: np.ndarray  # with the tuned question vector (= cosine where there is no tuning)
    bm25: np.ndarray
    coverage: np.ndarray  # idf-weighted share of the question's words in the passage
    first_stage: np.ndarray  # the fused score the first stage ranked by (0..1 + bonuses)
    named_law: np.ndarray  # bool: the passage belongs to a law the question names
    traits: np.ndarray  # (candidates × TRAITS) what each passage contains


def candidate_features(question: str, candidates: Candidates, documents: Mapping[str, Document],
                       question_terms: list[str]) -> np.ndarray:
    """(candidates × FEATURES) float matrix; every feature is relative to the question's own candidates where a
    raw score would mean different things for different questions."""
    asks = question_asks(question)
    traits = candidates.traits
    present = traits[:, [TRAITS.index(a) for a in ASKS]]
    picked = candidates.chunks
    lengths = np.array([len(c.text) for c in picked], dtype=np.float64)
    overlap = np.array([_title_overlap(question_terms, documents[c.doc_id].title + c.section) for c in picked])
    report = np.array([documents[c.doc_id].kind != "law" for c in picked], dtype=np.float64)
    columns = [
        candidates.cosine, candidates.cosine - candidates.cosine.max(), candidates.tuned - candidates.tuned.max(),
        unit_scaled(candidates.bm25), np.log1p(candidates.bm25), candidates.coverage, overlap,
        candidates.named_law.astype(np.float64), candidates.first_stage,
        candidates.first_stage - candidates.first_stage.max(), rank_score(candidates.first_stage),
        rank_score(candidates.cosine), rank_score(candidates.tuned), rank_score(candidates.bm25), np.log1p(lengths),
        traits[:, TRAITS.index("purpose")], report,
        *(asks[i] & present[:, i] for i in range(len(ASKS))), *(asks[i] & ~present[:, i] for i in range(len(ASKS))),
    ]
    matrix = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    return np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)


def term_coverage(question: str, hits: Iterable[Hit], idf: Callable[[str], float]) -> float:
    """Share of the question's (idf-weighted) words found in the hits' text, titles and headings."""
    terms = list(dict.fromkeys(tokenize(question)))
    if not terms:
        return 0.0
    evidence = "".join(f"{h.doc_title}{h.section}{h.text}" for h in hits)
    weights = {t: idf(t) for t in terms}
    return sum(w for t, w in weights.items() if t in evidence) / sum(weights.values())


def _title_overlap(terms: list[str], title: str) -> float:
    return sum(1 for t in terms if t in title) / len(terms) if terms else 0.0


class LinearRanker:
    """score = w · standardised features. Learnt by bench/train_ranker.py (the second stage, FEATURES) or
    bench/followup.py (follow-ups, kb.search.conversation.FOLLOW_UP_FEATURES); stored as JSON, never pickled."""

    def __init__(self, weights: np.ndarray, mean: np.ndarray, scale: np.ndarray, meta: dict,
                 features: tuple[str, ...] = FEATURES) -> None:
        if not (weights.shape == mean.shape == scale.shape == (len(features),)):
            raise ValueError(f"a ranker needs {len(features)} weights, means and scales")
        self.weights, self.mean, self.scale, self.meta = weights, mean, np.where(scale > 0, scale, 1.0), meta
        self.features = features

    def score(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.weights

    @classmethod
    def for_model(cls, name: str, directory: Path = RANKERS_DIR,
                  features: tuple[str, ...] = FEATURES) -> LinearRanker | None:
        """The shipped ranker `<name>.json` (a question encoder's fingerprint, or "followup"), or None (another
        model: the first stage's order stands)."""
        raw = read_learnt(directory, name)
        if raw is None or raw.get("features") != list(features):
            return None  # learnt over other features: retrain
        weights, mean, scale = (np.array(raw[k], dtype=np.float64) for k in ("weights", "mean", "scale"))
        return cls(weights, mean, scale, raw.get("meta", {}), features)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"features": list(self.features), "weights": _rounded(self.weights), "mean": _rounded(self.mean),
                "scale": _rounded(self.scale), "meta": self.meta}
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def read_learnt(directory: Path, fingerprint: str) -> dict | None:
    """A learnt artefact shipped for one model (`<fingerprint>.json`: a ranker, an answer model), or None."""
    path = directory / f"{fingerprint}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _rounded(values: np.ndarray) -> list[float]:
    return [float(f"{v:.6g}") if math.isfinite(v) else 0.0 for v in values]
