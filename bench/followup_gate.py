"""Learn the gate: does a question depend on the one before it, or does it stand alone?

    python -m bench.followup_gate [--index DIR]   # → kb/search/rankers/followup_gate.json, bench/results/followup_gate.json

Learnt from training conversations only: the follow-ups of bench/data/followup_fit.jsonl (they depend on the
question before them) against its new topics and the automatic topic switches of bench/data/switch_fit.jsonl
(bench/switches.py: training questions after a question about another document, unanswerable ones after an
answerable one). Each conversation's GATE_FEATURES come from the product's own reader
(ConversationReader.gate_row). A logistic model (L2 weight chosen by 10-fold cross-validation over
conversations, log loss) scores them; its threshold is chosen on the cross-validated scores: the most follow-ups
answered right while at most MAX_SWITCHES_READ of the switches are read as follow-ups (the issue allows 3 %; the
margin is for new questions). The product then answers a question below the threshold exactly as if asked alone.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from bench.common import write_result
from bench.followup import DATA, FOLDS, SHUFFLES
from kb.config import load_settings
from kb.evaluate import GoldQuestion, load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.conversation import GATE_FEATURES
from kb.search.rank import RANKERS_DIR, LinearRanker
from kb.stores.base import Filters

L2_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
MAX_SWITCHES_READ = 0.015


@dataclass
class GateExample:
    question: GoldQuestion
    features: np.ndarray
    depends: bool  # a follow-up of the fit set (else a new topic or a switch)
    alone_gold: bool  # the question's own best passage is gold
    follow_gold: bool  # the ranker's best follow-up candidate is gold
    keeps_own: bool  # the ranker's best is the question's own best passage


def examples(kb: KnowledgeBase, questions: list[GoldQuestion]) -> list[GateExample]:
    """Every conversation the gate would see (those with follow-up candidates) and its features."""
    reader = kb.conversation
    assert reader.ranker is not None, "the gate is learnt over the follow-up ranker's choices"
    out = []
    for question in questions:
        alone, found = reader.candidates(question.q, question.history, kb.answer_params.passages, Filters())
        if found is None:
            continue
        shares = reader.ranker_shares(found)
        best = found.hits[int(np.argmax(shares))]
        out.append(GateExample(question, reader.gate_row(question.q, alone, found, shares),
                               question.tag == "follow_up", question.matches(alone.hits[0]), question.matches(best),
                               best.chunk_id == alone.hits[0].chunk_id))
    return out


def learn(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """(weights, bias) of an L2-regularised logistic regression on standardised features."""

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        z = x @ w + b
        p = 1 / (1 + np.exp(-z))
        value = float(np.mean(np.logaddexp(0, z) - y * z) + l2 * (w @ w) / 2)
        residual = (p - y) / len(y)
        return value, np.append(x.T @ residual + l2 * w, residual.sum())

    result = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B")
    return result.x[:-1], float(result.x[-1])


def out_of_fold(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Each example's decision value (w·x + b) from models learnt without its fold, averaged over shuffles."""
    decisions = np.zeros(len(y))
    for seed in SHUFFLES:
        order = list(range(len(y)))
        random.Random(seed).shuffle(order)
        for fold in range(FOLDS):
            held = np.array(sorted(order[fold::FOLDS]))
            train = np.setdiff1d(np.arange(len(y)), held)
            w, b = learn(x[train], y[train], l2)
            decisions[held] += x[held] @ w + b
    return decisions / len(SHUFFLES)


def outcome(talks: list[GateExample], decisions: np.ndarray, cut: float) -> dict:
    """What a cut on the decision values does: follow-ups answered right, switches read as follow-ups."""
    passes = decisions >= cut
    follow = [t.follow_gold if p else t.alone_gold for t, p in zip(talks, passes) if t.depends]
    # A switch is read as a follow-up when it passes and the ranker does not keep its own passage; one the
    # knowledge base cannot answer alone may be answered by the follow-up reading whenever it passes.
    read = [bool(p and (not t.keeps_own or not t.question.answerable)) for t, p in zip(talks, passes)
            if t.question.tag.startswith("switch") or t.question.tag == "new_topic"]
    return {"cut": round(float(cut), 4), "follow_ups_right": round(float(np.mean(follow)), 4),
            "switches_read_as_follow_up": round(float(np.mean(read)), 4)}


def choose_cut(talks: list[GateExample], decisions: np.ndarray) -> dict:
    """The cut with the most follow-ups right among those reading at most MAX_SWITCHES_READ of the switches."""
    options = [outcome(talks, decisions, c) for c in np.unique(decisions)] + [outcome(talks, decisions, np.inf)]
    allowed = [o for o in options if o["switches_read_as_follow_up"] <= MAX_SWITCHES_READ]
    return max(allowed, key=lambda o: (o["follow_ups_right"], o["cut"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index directory (default: the product's)")
    args = parser.parse_args()
    kb = KnowledgeBase.open(args.index, load_settings())
    sources = ("followup_fit", "switch_fit")
    talks = examples(kb, [q for name in sources for q in load_questions(DATA / f"{name}.jsonl")])
    x_raw = np.vstack([t.features for t in talks])
    y = np.array([t.depends for t in talks], dtype=np.float64)
    mean, scale = x_raw.mean(axis=0), x_raw.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    x = (x_raw - mean) / scale
    log_loss = {}
    for l2 in L2_GRID:
        d = out_of_fold(x, y, l2)
        log_loss[str(l2)] = round(float(np.mean(np.logaddexp(0, d) - y * d)), 4)
    best_l2 = min(L2_GRID, key=lambda l2: (log_loss[str(l2)], -l2))
    decisions = out_of_fold(x, y, best_l2)
    chosen = choose_cut(talks, decisions)
    weights, bias = learn(x, y, best_l2)
    meta = {"trained_on": [f"bench/data/{name}.jsonl" for name in sources], "conversations": len(talks),
            "depends": int(y.sum()), "l2": best_l2, "cross_validated_log_loss": log_loss,
            "threshold": round(chosen["cut"] - bias, 6), "cross_validated_at_threshold": chosen,
            "always_follow_up": outcome(talks, decisions, float(decisions.min())), "model": kb.embedder.model_id,
            "script": "python -m bench.followup_gate"}
    path = RANKERS_DIR / "followup_gate.json"
    LinearRanker(weights, mean, scale, meta, GATE_FEATURES).save(path)
    write_result("followup_gate", {**meta, "bias": round(bias, 6),
                                   "weights": dict(zip(GATE_FEATURES, map(float, np.round(weights, 4))))})
    print(log_loss, "→ l2", best_l2, chosen, "wrote", path)


if __name__ == "__main__":
    main()
