"""Learn how much the questions attached to passages (kb/stores/handles.py) and the law router
(kb/search/router.py) should move the ranking; from real questions only.

    python -m bench.train_handles --index DIR [--write]      # after python -m bench.train_router --write

DIR is an index of corpus/ built with its sidecars (`kb ingest corpus --index DIR`). The handle stage weighs the
second stage's verdict (kb/search/rank.py, as shipped) against how alike a question is to each candidate's
attached questions and which document the router says it is about (kb.search.handle_stage.HANDLE_FEATURES).
Written questions resemble written questions, so the weights are never learnt from the bank itself: they are
fitted on bench.train_ranker's training questions (STARD's real lay questions over corpus/, the team's 信访 and
report questions), by the same listwise softmax, each source weighing the same. The L2 penalty is chosen on a
fixed 20 % validation part of those (seeded) beside the bank's held-out articles
(bench/data/question_bank_heldout.jsonl, whose questions are in no sidecar: what the stage does to articles that
have no handles), by the mean over the three sources of MRR@10. Then the model is refitted on all training
questions and, with --write, shipped as kb/search/rankers/handles-<model fingerprint>.json. The same stage
without the router's column is fitted too, for bench.handles_ablation (var/bench/handles_without_router.json).

The question tuning, the ranker and the router learnt from these same questions: their verdicts on them are
better than on any new question, and the handle stage would learn to trust them too much. So all three are
cross-fitted: the questions are cut in the fixed folds of bench/crossfit.py, and each fold is embedded with the
tuning learnt without it (bench.train_encoder) and scored by a ranker (bench.train_ranker.fit, the shipped L2) and
a router (bench.train_router, the shipped settings) refitted without it.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import WORK, write_result
from bench.crossfit import FOLDS, by_fold, cross_fitted, fold
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
    open_with_handles,
    ranking_metrics,
    ranking_retriever,
    scaling,
    standardise,
)
from bench.train_router import fit_shipped, router_data
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.handle_stage import HANDLE_FEATURES, ROUTER_FEATURE, handle_features, router_column
from kb.search.rank import RANKERS_DIR, LinearRanker
from kb.search.retrieve import Retriever
from kb.search.router import LawRouter
from kb.stores.base import Filters


def handle_retriever(kb: KnowledgeBase) -> Retriever:
    """The product's retriever with the handle stage switched on, whatever is shipped (neutral weights): the
    candidates then include the articles of the nearest handles, as they will in the product. It keeps `kb`'s
    ranker (a fold's knowledge base carries the shipped one)."""
    retriever = ranking_retriever(kb)
    retriever.ranker = kb.retriever.ranker
    size = len(HANDLE_FEATURES)
    retriever.handle_ranker = LinearRanker(np.zeros(size), np.zeros(size), np.ones(size), {}, HANDLE_FEATURES)
    return retriever


@dataclass
class Observed:
    """One question as the handle stage sees it: the ranker's features, the handles' evidence, the gold mask, and
    what the router needs (the question's vector, each candidate's document title)."""

    source: str
    question: str
    ranker_features: np.ndarray
    handles: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    gold: np.ndarray
    vector: np.ndarray
    titles: list[str]

    def evidence(self, router: LawRouter) -> tuple[np.ndarray, ...]:
        """The handle stage's evidence with this router's verdict (a router fitted without the question)."""
        cosine, bm25, law_share, has_handles = self.handles
        return cosine, bm25, law_share, router_column(self.titles, law_share, router.shares(self.vector)), has_handles


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
        titles = [retriever.store.documents[c.doc_id].title for c in stage.candidates.chunks]
        found.append(Observed(source, question, retriever.features(question, stage),
                              stage.handles.features(stage.candidates.chunks), gold, stage.question_vector, titles))
    return found, missed


def cross_fitted_examples(observed: list[Observed], shipped: LinearRanker,
                          routers: list[LawRouter]) -> list[Example]:
    """Handle-stage examples whose ranker and router verdicts come from models that never saw the question
    (`routers[k]`: fitted without fold k)."""
    examples = []
    for k in range(FOLDS):
        others = [o for o in observed if fold(o.question) != k]
        fitted = [Example(o.source, o.ranker_features, o.gold, o.gold) for o in others]
        mean, scale = scaling(fitted)
        weights = fit(standardise(fitted, mean, scale), float(shipped.meta.get("l2", 0.01)))
        for o in (o for o in observed if fold(o.question) == k):
            ranked = ((o.ranker_features - mean) / scale) @ weights
            examples.append(Example(o.source, handle_features(ranked, *o.evidence(routers[k])), o.gold, ranked))
    return examples


def shipped_examples(observed: list[Observed], shipped: LinearRanker, router: LawRouter) -> list[Example]:
    """Handle-stage examples with the shipped ranker's and router's verdicts (for questions they never saw)."""
    out = []
    for o in observed:
        ranked = shipped.score(o.ranker_features)
        out.append(Example(o.source, handle_features(ranked, *o.evidence(router)), o.gold, ranked))
    return out


def without_router(batch: list[Example]) -> list[Example]:
    """The same examples without the router's column (for the ablation: what the router adds)."""
    return [Example(e.source, np.delete(e.features, ROUTER_FEATURE, axis=1), e.gold, e.first_stage) for e in batch]


WITHOUT_ROUTER = tuple(f for f in HANDLE_FEATURES if f != "router_share")
#: The handle stage fitted without the router's column, for bench.handles_ablation (not shipped).
WITHOUT_ROUTER_FILE = WORK / "handles_without_router.json"


def choose_and_fit(batch: list[Example], bank: list[Example],
                   columns: tuple[str, ...]) -> tuple[dict, float, LinearRanker]:
    """The L2 chosen on the validation part and the bank's held-out articles; the stage over `columns` (the
    examples' features) refitted on all of `batch` with it. Returns the validation figures, the L2 and the stage."""
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
    return selection, best, LinearRanker(weights, mean, scale, {}, columns)


def with_router_ignored(stage: LinearRanker) -> LinearRanker:
    """A stage over WITHOUT_ROUTER as one over HANDLE_FEATURES whose router weight is 0."""
    weights, mean, scale = (np.insert(values, ROUTER_FEATURE, fill)
                            for values, fill in ((stage.weights, 0.0), (stage.mean, 0.0), (stage.scale, 1.0)))
    return LinearRanker(weights, mean, scale, stage.meta, HANDLE_FEATURES)


def main() -> int:
    parser = experiment_parser(__doc__)
    parser.add_argument("--write", action="store_true", help="ship the weights in kb/search/rankers/")
    if (opened := open_with_handles(parser)) is None:
        return 0
    args, kb = opened
    retriever = handle_retriever(kb)
    assert retriever.ranker is not None
    folds = cross_fitted(Path(args.index), kb)
    if folds is None:
        print("skipped: no cross-fitted question tunings (python -m bench.train_encoder writes them)")
        return 0
    observed: list[Observed] = []
    coverage = {}
    for path in LOCAL_SETS:
        items, found, missed = local_items(kb, load_questions(path)), [], 0
        for fold_kb, part in by_fold(folds, items):
            more, lost = observe(handle_retriever(fold_kb), part, path.stem)
            found, missed = found + more, missed + lost
        observed += found
        coverage[path.stem] = {"used": len(found), "answer_not_among_candidates": missed}
    shipped_router = retriever.router
    if shipped_router is None:
        print("skipped: no law router is shipped for this model (run python -m bench.train_router --write first)")
        return 0
    l2, real_weight = float(shipped_router.meta["l2"]), float(shipped_router.meta["real_weight"])
    data = router_data(kb)
    routers = [fit_shipped(data, l2, real_weight, leave_out_fold=k) for k in range(FOLDS)]
    batch = cross_fitted_examples(observed, retriever.ranker, routers)
    held_out, bank_missed = observe(retriever, local_items(kb, held_out_bank()), "bank_heldout")
    bank = shipped_examples(held_out, retriever.ranker, shipped_router)
    coverage["bank_heldout"] = {"used": len(bank), "answer_not_among_candidates": bank_missed,
                                "validation_only": True}

    selection, best, stage = choose_and_fit(batch, bank, HANDLE_FEATURES)
    plain_selection, plain_best, plain_stage = choose_and_fit(without_router(batch), without_router(bank),
                                                              WITHOUT_ROUTER)
    meta = {"trained_on": coverage, "question_tuning_cross_fitted": True, "ranker_cross_fitted": True,
            "router_cross_fitted": True, "l2": best,
            "seed": SEED, "validation_share": VALIDATION_SHARE, "validation": selection,
            "without_router": {"l2": plain_best, "validation": plain_selection},
            "handles": len(kb.store.handles), "script": "python -m bench.train_handles"}
    stage.meta = meta
    figures = {**meta, "weights": dict(zip(HANDLE_FEATURES, map(float, np.round(stage.weights, 4))))}
    write_result("train_handles", figures)
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    with_router_ignored(plain_stage).save(WITHOUT_ROUTER_FILE)
    if args.write:
        path = RANKERS_DIR / f"handles-{kb.embedder.fingerprint}.json"
        stage.save(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
