"""Learn how much the questions attached to passages (kb/stores/handles.py) should move the ranking; real questions only.

    python -m bench.train_handles --index DIR [--write]

DIR is an index of corpus/ built with its sidecars (`kb ingest corpus --index DIR`). The handle stage weighs
the second stage's verdict (kb/search/rank.py, as shipped) against how alike a question is to each candidate's attached
questions (kb.search.handle_stage.HANDLE_FEATURES). Written questions resemble written questions, so the weights are never
learnt from the bank itself: they are fitted on bench.train_ranker's training questions (STARD's real lay
questions over corpus/, the team's 信访 and report questions), by the same listwise softmax, each source weighing
the same. The L2 penalty is chosen on a fixed 20 % validation part of those (seeded) beside the bank's held-out
articles (bench/data/question_bank_heldout.jsonl, whose questions are in no sidecar: what the stage does to
articles that have no handles), by the mean over the three sources of MRR@10. Then the model is refitted on
all training questions and, with --write, shipped as kb/search/rankers/handles-<model fingerprint>.json.

The ranker learnt from these same questions: its verdict on them is better than on any new question, and the
handle stage would learn to trust it too much. So its verdict is cross-fitted: the questions are cut in the two
fixed halves of bench/crossfit.py, and each half is scored by a ranker refitted (bench.train_ranker.fit, the
shipped L2) on the other half only. The question tuning (bench/train_encoder.py) also saw these questions and is
not cross-fitted here (its held-out halves need the STARD pack): the ranker's verdict stays somewhat flattered,
so the handles' weight is, if anything, under-estimated.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import write_result
from bench.crossfit import half
from bench.question_bank import held_out_bank
from bench.train_ranker import (
    L2_GRID,
    LOCAL_SETS,
    SEED,
    VALIDATION_SHARE,
    Example,
    Item,
    experiment_parser,
    fit,
    local_items,
    parse_experiment,
    ranking_metrics,
    scaling,
    standardise,
)
from kb.config import RetrievalParams, load_settings
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.handle_stage import HANDLE_FEATURES, handle_features
from kb.search.rank import RANKERS_DIR, LinearRanker
from kb.search.retrieve import Retriever
from kb.stores.base import Filters


def handle_retriever(kb: KnowledgeBase) -> Retriever:
    """The product's retriever with the handle stage switched on, whatever is shipped (neutral weights): the
    candidates then include the articles of the nearest handles, as they will in the product."""
    retriever = kb.with_params(RetrievalParams(method="ranked")).retriever
    size = len(HANDLE_FEATURES)
    retriever.handle_ranker = LinearRanker(np.zeros(size), np.zeros(size), np.ones(size), {}, HANDLE_FEATURES)
    return retriever


@dataclass
class Observed:
    """One question as the handle stage sees it: the ranker's features, the handles' evidence, the gold mask."""

    source: str
    question: str
    ranker_features: np.ndarray
    handles: tuple[np.ndarray, np.ndarray, np.ndarray]
    gold: np.ndarray


def observe(retriever: Retriever, items: list[Item], source: str) -> tuple[list[Observed], int]:
    """Every question whose answer is among the candidates (with the handles' candidates); and how many not."""
    found, missed = [], 0
    for question, answers in items:
        stage = retriever.first_stage(question, Filters(), retriever.params)
        if stage is None or stage.handles is None or retriever.ranker is None:
            missed += 1
            continue
        gold = np.array([answers(c) for c in stage.candidates.chunks], dtype=bool)
        if not gold.any():
            missed += 1
            continue
        found.append(Observed(source, question, retriever.features(question, stage),
                              stage.handles.features(stage.candidates.chunks), gold))
    return found, missed


def cross_fitted_examples(observed: list[Observed], shipped: LinearRanker) -> list[Example]:
    """Handle-stage examples whose ranker verdict comes from a ranker that never saw the question."""
    examples = []
    for k in (0, 1):
        others = [o for o in observed if half(o.question) != k]
        fitted = [Example(o.source, o.ranker_features, o.gold, o.gold) for o in others]
        mean, scale = scaling(fitted)
        weights = fit(standardise(fitted, mean, scale), float(shipped.meta.get("l2", 0.01)))
        for o in (o for o in observed if half(o.question) == k):
            ranked = ((o.ranker_features - mean) / scale) @ weights
            examples.append(Example(o.source, handle_features(ranked, *o.handles), o.gold, ranked))
    return examples


def shipped_examples(observed: list[Observed], shipped: LinearRanker) -> list[Example]:
    """Handle-stage examples with the shipped ranker's verdict (for questions it never saw)."""
    out = []
    for o in observed:
        ranked = shipped.score(o.ranker_features)
        out.append(Example(o.source, handle_features(ranked, *o.handles), o.gold, ranked))
    return out


def main() -> int:
    parser = experiment_parser(__doc__)
    parser.add_argument("--write", action="store_true", help="ship the weights in kb/search/rankers/")
    args = parse_experiment(parser)
    if args is None:
        return 0
    kb = KnowledgeBase.open(settings=load_settings(index_dir=Path(args.index)))
    if kb.store.handles is None:
        print(f"skipped: the index at {args.index} has no attached questions (ingest corpus/ with its sidecars)")
        return 0
    retriever = handle_retriever(kb)
    assert retriever.ranker is not None
    observed: list[Observed] = []
    coverage = {}
    for path in LOCAL_SETS:
        found, missed = observe(retriever, local_items(kb, load_questions(path)), path.stem)
        observed += found
        coverage[path.stem] = {"used": len(found), "answer_not_among_candidates": missed}
    batch = cross_fitted_examples(observed, retriever.ranker)
    held_out, bank_missed = observe(retriever, local_items(kb, held_out_bank()), "bank_heldout")
    bank = shipped_examples(held_out, retriever.ranker)
    coverage["bank_heldout"] = {"used": len(bank), "answer_not_among_candidates": bank_missed,
                                "validation_only": True}

    order = list(range(len(batch)))
    random.Random(SEED).shuffle(order)
    cut = int(len(order) * VALIDATION_SHARE)
    validation, training = [batch[i] for i in order[:cut]], [batch[i] for i in order[cut:]]
    mean, scale = scaling(training)
    train_std = standardise(training, mean, scale)
    selection: dict[str, dict] = {"ranker_alone": ranking_metrics(validation + bank, lambda e: e.first_stage)}
    for l2 in L2_GRID:
        weights = fit(train_std, l2)
        selection[str(l2)] = ranking_metrics(standardise(validation + bank, mean, scale),
                                             lambda e, w=weights: e.features @ w)
    best = max(L2_GRID, key=lambda l2: (selection[str(l2)]["mean"]["mrr@10"], -l2))
    mean, scale = scaling(batch)
    weights = fit(standardise(batch, mean, scale), best)
    meta = {"trained_on": coverage, "ranker_cross_fitted": True, "l2": best, "seed": SEED, "validation_share": VALIDATION_SHARE,
            "validation": selection, "handles": len(kb.store.handles), "script": "python -m bench.train_handles"}
    figures = {**meta, "weights": dict(zip(HANDLE_FEATURES, map(float, np.round(weights, 4))))}
    write_result("train_handles", figures)
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    if args.write:
        path = RANKERS_DIR / f"handles-{kb.embedder.fingerprint}.json"
        LinearRanker(weights, mean, scale, meta, HANDLE_FEATURES).save(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
