"""Would the second stage rank better if it saw each candidate's context: how much of the question's tuned-cosine
mass falls in its section (章/节) of the law, and how close its neighbouring articles come?

    python -m bench.experiments.context_features [--index DIR]

Real lay questions often describe a situation that a whole section answers, while the ranker scores each article
alone (kb.search.rank.FEATURES). An experiment on bench.train_ranker's training questions
(../shared/eval/stard_local_train.jsonl and bench/data/train_local.jsonl), each with the cross-fitted features of
bench.train_ranker (embedded by the question tuning that never saw it, bench/crossfit.py). Added columns, per
candidate:

* for each temperature of TEMPERATURES, the softmax of the candidates' tuned cosines summed over the candidates
  of its section, and the same without the candidate itself;
* how far the best other candidate within NEIGHBOURHOOD articles of the same law is from the best candidate's
  tuned cosine (NO_NEIGHBOUR when there is none).

The linear ranker (bench.train_ranker's listwise softmax) is fitted with and without them and compared by
five-fold cross-validation over all training questions (seeded), per source: Hit@1 and MRR@10 of the first
gold candidate. Nothing of the product changes; writes results/context_features.json.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

from bench.common import EXPERIMENT_RESULTS, write_result
from bench.crossfit import by_fold, cross_fitted
from bench.train_ranker import (
    LOCAL_SETS,
    SEED,
    Example,
    examples,
    experiment_parser,
    fit,
    local_items,
    parse_experiment,
    ranking_retriever,
    scaling,
    standardise,
)
from kb.config import load_settings
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.rank import FEATURES
from kb.search.retrieve import FirstStage, Retriever

TEMPERATURES = (0.01, 0.02, 0.05)
NEIGHBOURHOOD = 2
NO_NEIGHBOUR = -0.3
FOLDS = 5
L2_GRID = (0.001, 0.01)


def context_columns(stage: FirstStage) -> np.ndarray:
    """(candidates × 2·len(TEMPERATURES) + 1): section shares, and the nearest articles' closeness."""
    chunks, tuned = stage.candidates.chunks, stage.candidates.tuned.astype(np.float64)
    columns = []
    for temperature in TEMPERATURES:
        share = np.exp((tuned - tuned.max()) / temperature)
        share /= share.sum()
        by_section: dict[tuple[str, str], float] = {}
        for chunk, value in zip(chunks, share):
            by_section[(chunk.doc_id, chunk.section)] = by_section.get((chunk.doc_id, chunk.section), 0.0) + value
        section = np.array([by_section[(c.doc_id, c.section)] for c in chunks])
        columns += [section, section - share]
    neighbour = []
    for chunk in chunks:
        near = [t for other, t in zip(chunks, tuned)
                if other.doc_id == chunk.doc_id and chunk.article_no is not None and other.article_no is not None
                and 0 < abs(other.article_no - chunk.article_no) <= NEIGHBOURHOOD]
        neighbour.append(max(near) - tuned.max() if near else NO_NEIGHBOUR)
    columns.append(np.array(neighbour))
    return np.column_stack(columns)


class ContextRetriever(Retriever):
    """The product's retriever whose second-stage features carry the context columns after FEATURES."""

    def features(self, query: str, stage: FirstStage) -> np.ndarray:
        return np.hstack([super().features(query, stage), context_columns(stage)])


def cross_validated(batch: list[Example], columns: list[int], l2: float) -> dict:
    """Per source, Hit@1 and MRR@10 of the linear ranker over `columns`, each question scored by the fit
    without its fold."""
    order = list(range(len(batch)))
    random.Random(SEED).shuffle(order)
    ranks: dict[str, list[int]] = {}
    for k in range(FOLDS):
        held = set(order[k::FOLDS])
        picked = [Example(e.source, e.features[:, columns], e.gold, e.first_stage) for e in batch]
        training = [e for i, e in enumerate(picked) if i not in held]
        mean, scale = scaling(training)
        weights = fit(standardise(training, mean, scale), l2)
        for example in standardise([picked[i] for i in sorted(held)], mean, scale):
            order_k = np.argsort(-(example.features @ weights), kind="stable")
            ranks.setdefault(example.source, []).append(int(np.flatnonzero(example.gold[order_k])[0]) + 1)
    return {source: {"n": len(r), "hit@1": round(float(np.mean([x == 1 for x in r])), 4),
                     "mrr@10": round(float(np.mean([1 / x if x <= 10 else 0.0 for x in r])), 4)}
            for source, r in sorted(ranks.items())}


def main() -> int:
    args = parse_experiment(experiment_parser(__doc__))
    if args is None:
        return 0
    kb = KnowledgeBase.open(settings=load_settings(index_dir=Path(args.index)))
    folds = cross_fitted(Path(args.index), kb)
    if folds is None:
        print("skipped: no cross-fitted question tunings (python -m bench.train_encoder writes them)")
        return 0
    batch: list[Example] = []
    for path in LOCAL_SETS:
        for fold_kb, part in by_fold(folds, local_items(kb, load_questions(path))):
            retriever = ranking_retriever(fold_kb)
            retriever.__class__ = ContextRetriever  # the same retriever, with the context columns added
            batch += examples(retriever, part, path.stem)[0]
    base = list(range(len(FEATURES)))
    extra = list(range(len(FEATURES), batch[0].features.shape[1]))
    variants = {"ranker (FEATURES)": base, "+ all context columns": base + extra,
                **{f"+ section share, temperature {t}": base + extra[2 * i: 2 * i + 2]
                   for i, t in enumerate(TEMPERATURES)},
                "+ nearest articles": base + extra[-1:]}
    figures = {"questions": len(batch), "folds": FOLDS, "seed": SEED,
               "cross_validated": {name: {str(l2): cross_validated(batch, columns, l2) for l2 in L2_GRID}
                                   for name, columns in variants.items()},
               "script": "python -m bench.experiments.context_features --index index"}
    for name, by_l2 in figures["cross_validated"].items():
        print(name, by_l2)
    write_result("context_features", figures, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
