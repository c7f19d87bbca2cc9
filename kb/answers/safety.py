"""Does a question speak of danger to a person — violence, threats, self-harm, abuse of a child or an elder — and
of which kind? Decided from its meaning, so that 「当家的又动手了」 is heard as well as 「家暴」.

A citizen in danger rarely uses the words a keyword list expects, and ordinary questions use those words all the
time (打官司, 打工, 殴打他人会被怎么处罚). So the question's vector (the embedding model as built, the one whose
cosines mean the same across questions) is compared with the centroids of training phrasings, one group per kind
of danger and one of ordinary questions, near misses included (kb/answers/safety_phrasings.json). Each group scores
(centroid − centre) · (question − centre), the centre being the mean of all phrasings: the nearest centroid, with
what every phrasing shares taken out. A question is in danger when its best kind outscores the ordinary group by
the threshold; the kind is that best one.

The threshold is chosen on the training phrasings alone, by leave-one-out (each phrasing scored against centroids
built without it), when the phrasings are first embedded: it fits whichever model and backend embed them, and
cannot go stale when the phrasings change. `python -m bench.safety` records the threshold chosen for the default
model and measures the check on bench/data/safety_check.jsonl, written apart and never used to choose anything.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from kb.embedding.embedder import Embedder

PHRASINGS = Path(__file__).resolve().parent / "safety_phrasings.json"


class Danger(str, Enum):
    """A kind of danger; each has its own lines in the notice (kb/answers/notice.py)."""

    VIOLENCE = "violence"  # assault, threats, being followed or held: 110
    DOMESTIC = "domestic"  # violence against a woman by her husband, partner or his family
    CHILD = "child"
    SELF_HARM = "self_harm"
    ELDER = "elder"


@dataclass(frozen=True)
class Phrasings:
    """Training phrasings: how people speak of each kind of danger, and ordinary questions."""

    danger: dict[Danger, list[str]]
    ordinary: list[str]

    @classmethod
    def load(cls, path: Path = PHRASINGS) -> Phrasings:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls({Danger(kind): list(texts) for kind, texts in raw["danger"].items()}, list(raw["ordinary"]))

    def texts_and_groups(self) -> tuple[list[str], np.ndarray]:
        """Every phrasing, and its group: the index of its kind in Danger, or len(Danger) for ordinary."""
        texts, groups = [], []
        for group, kind in enumerate(Danger):
            texts += self.danger.get(kind, [])
            groups += [group] * len(self.danger.get(kind, []))
        return texts + self.ordinary, np.array(groups + [len(Danger)] * len(self.ordinary))


def group_scores(means: np.ndarray, centre: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(vectors × groups): how much nearer each group's centroid a vector is, with what all share taken out."""
    return (vectors - centre) @ (means - centre).T


def danger_margin(scores: np.ndarray) -> np.ndarray:
    """How far the best kind of danger outscores the ordinary group (the last column)."""
    return scores[..., :-1].max(axis=-1) - scores[..., -1]


def leave_one_out_scores(vectors: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each phrasing's group scores against centroids and centre computed without it."""
    count = len(vectors)
    sizes = np.bincount(groups, minlength=len(Danger) + 1).astype(np.float64)
    sums = np.stack([vectors[groups == g].sum(axis=0) for g in range(len(sizes))]).astype(np.float64)
    total = sums.sum(axis=0)
    scores = np.empty((count, len(sizes)))
    for i, (vector, group) in enumerate(zip(vectors.astype(np.float64), groups)):
        means = sums / sizes[:, None]
        means[group] = (sums[group] - vector) / (sizes[group] - 1)
        scores[i] = group_scores(means, (total - vector) / (count - 1), vector[None, :])[0]
    return scores


def choose_threshold(margins: np.ndarray, in_danger: np.ndarray) -> float:
    """The cut between consecutive margins that maximises recall minus false-positive rate; of equal cuts the
    lowest, since a missed danger costs more than a needless line."""
    ordered = np.unique(margins)
    cuts = (ordered[1:] + ordered[:-1]) / 2
    gains = [(margins[in_danger] >= cut).mean() - (margins[~in_danger] >= cut).mean() for cut in cuts]
    return float(cuts[int(np.argmax(gains))])


@dataclass(frozen=True)
class DangerModel:
    """Group centroids, their centre and the threshold, with the leave-one-out scores it was chosen on."""

    means: np.ndarray  # one row per Danger, then the ordinary group
    centre: np.ndarray
    threshold: float
    training_groups: np.ndarray
    training_scores: np.ndarray  # leave-one-out

    @classmethod
    def fit(cls, vectors: np.ndarray, groups: np.ndarray) -> DangerModel:
        scores = leave_one_out_scores(vectors, groups)
        threshold = choose_threshold(danger_margin(scores), groups < len(Danger))
        means = np.stack([vectors[groups == g].mean(axis=0) for g in range(len(Danger) + 1)])
        return cls(means, vectors.mean(axis=0), threshold, groups, scores)

    def danger(self, vector: np.ndarray) -> Danger | None:
        """The kind of danger of a question's vector (the model as built), or None."""
        return self.decide(group_scores(self.means, self.centre, vector[None, :])[0])

    def decide(self, scores: np.ndarray) -> Danger | None:
        """The kind of danger of one row of group scores, or None."""
        if danger_margin(scores) < self.threshold:
            return None
        return list(Danger)[int(np.argmax(scores[:-1]))]


class SafetyCheck:
    """The danger check of one embedder. The phrasings are embedded at its first question, once, whichever thread
    asks first; the question's vector is usually the one retrieval has just computed (the embedder keeps recent
    questions' vectors), so a question costs a few dot products."""

    _by_embedder: ClassVar[weakref.WeakKeyDictionary[Embedder, SafetyCheck]] = weakref.WeakKeyDictionary()
    _by_embedder_lock = threading.Lock()

    def __init__(self, embedder: Embedder, phrasings: Path = PHRASINGS) -> None:
        self.embedder = embedder
        self.phrasings = phrasings
        self._model: DangerModel | None = None
        self._fitting = threading.Lock()

    @classmethod
    def for_embedder(cls, embedder: Embedder) -> SafetyCheck:
        """The check shared by every knowledge base over `embedder`: the phrasings are embedded once per model."""
        with cls._by_embedder_lock:
            check = cls._by_embedder.get(embedder)
            if check is None:
                check = cls._by_embedder[embedder] = cls(embedder)
            return check

    def model(self) -> DangerModel:
        """Fitted on first use, not when a knowledge base opens (that stays as fast as it was); the server asks
        for it at start (server/service.py), so no citizen waits for it."""
        if self._model is None:
            with self._fitting:
                if self._model is None:
                    texts, groups = Phrasings.load(self.phrasings).texts_and_groups()
                    self._model = DangerModel.fit(self.embedder.encode_queries(texts, tuned=False), groups)
        return self._model

    def danger(self, question: str) -> Danger | None:
        """The kind of danger the question speaks of, or None. Its vector with the model as built, as retrieval
        computes it (kb/search/retrieve.py), so usually found among the embedder's recent questions."""
        return self.model().danger(self.embedder.encode_question(question.strip())[0])
