"""Learn the second stage's weights (kb/search/rank.py) from training questions only; write kb/search/rankers/<encoder>.json.

    python -m bench.train_ranker [--index DIR] [--tunings DIR] [--write]

Training questions: ../shared/eval/stard_local_train.jsonl (real lay questions over the default corpus) and
bench/data/train_local.jsonl (信访 and report questions the team wrote from the documents). Never the measurement
sets (dev.jsonl, stard_local_dev.jsonl, STARD dev).

The question encoder's cosine is one of the features, and the shipped tuning (bench/train_encoder.py) was learnt
from these very questions: their cosines would be better than any new question's, and the ranker would learn
to trust the dense score too much. So the features are cross-fitted: the questions are cut in five folds
and each fold's features come from a tuning learnt without that fold (bench/crossfit.py). For each question the product's own first stage proposes its candidates and
kb.search.rank computes their features; a linear model is fitted by listwise softmax (the gold article should get the
probability mass among its question's candidates), L2-regularised, each source of questions weighing the same
in total (STARD's civil-law questions outnumber the 信访 and report ones ten to one, but citizens ask all
three). The regularisation is chosen on a fixed 20 % validation part of the training questions (seeded), by the
mean over sources of MRR@10, then the model is refitted on all of them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from bench.common import SHARED, WORK, write_result
from bench.crossfit import TUNINGS, by_fold, cross_fitted
from kb.config import PROJECT_ROOT, RetrievalParams, load_settings
from kb.evaluate import GoldQuestion, load_questions
from kb.knowledge_base import KnowledgeBase
from kb.schema import Chunk
from kb.search.rank import FEATURES, RANKERS_DIR, LinearRanker
from kb.search.retrieve import Retriever
from kb.stores.base import Filters

LOCAL_SETS = (SHARED / "eval" / "stard_local_train.jsonl", PROJECT_ROOT / "bench" / "data" / "train_local.jsonl")
SEED = 20261127
VALIDATION_SHARE = 0.2
L2_GRID = (0.001, 0.01, 0.1, 1.0)


def missing_inputs(index: Path) -> str | None:
    """Why the training experiments cannot run (no training questions, no index of corpus/), or None."""
    missing = [str(p) for p in LOCAL_SETS if not p.is_file()]
    if not Path(index, "manifest.json").is_file():
        missing.append(f"an index of corpus/ in {index}")
    return f"skipped: missing {', '.join(missing)}" if missing else None


def experiment_parser(description: str) -> argparse.ArgumentParser:
    """The command line every training experiment starts from: which index of corpus/ to read."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=str(WORK / "indexes" / "default-torch"), help="index of corpus/")
    return parser


def parse_experiment(parser: argparse.ArgumentParser) -> argparse.Namespace | None:
    """The experiment's arguments, or None after saying why it cannot run (so it skips cleanly)."""
    args = parser.parse_args()
    if reason := missing_inputs(Path(args.index)):
        print(reason)
        return None
    return args


def open_with_handles(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, KnowledgeBase] | None:
    """The experiment's arguments and its index of corpus/ with attached questions, or None after saying why it
    cannot run (no training questions, no index, an index built without the sidecars)."""
    args = parse_experiment(parser)
    if args is None:
        return None
    kb = KnowledgeBase.open(settings=load_settings(index_dir=Path(args.index)))
    if kb.store.handles is None:
        print(f"skipped: the index at {args.index} has no attached questions (ingest corpus/ with its sidecars)")
        return None
    return args, kb


@dataclass
class Example:
    """One training question: its candidates' features and which of them answer it."""

    source: str
    features: np.ndarray
    gold: np.ndarray  # bool per candidate
    first_stage: np.ndarray  # the first stage's scores, for comparison


#: A training question: its text, and which passages answer it.
Item = tuple[str, Callable[[Chunk], bool]]


def local_items(kb: KnowledgeBase, questions: list[GoldQuestion]) -> list[Item]:
    """Questions over corpus/: a chunk answers when it is the gold article of the gold law, or (for documents
    without articles) holds one of the gold strings."""
    def answers(question: GoldQuestion) -> Callable[[Chunk], bool]:
        def check(chunk: Chunk) -> bool:
            if not question.doc or question.doc not in kb.documents[chunk.doc_id].title:
                return False
            if question.articles:
                return chunk.article_no in question.articles
            return any(s in chunk.text for s in question.contains)
        return check

    return [(q.q, answers(q)) for q in questions if q.answerable]


def ranking_retriever(kb: KnowledgeBase) -> Retriever:
    """The knowledge base's retriever with the learnt second stage (whatever its default parameters)."""
    return kb.with_params(RetrievalParams(method="ranked")).retriever


def examples(retriever: Retriever, items: list[Item], source: str) -> tuple[list[Example], int]:
    """Examples for the questions whose answer the first stage finds at all (features as `retriever` computes
    them); and how many it missed."""
    found, missed = [], 0
    for question, answers in items:
        stage = retriever.first_stage(question, Filters(), retriever.params)
        gold = np.array([answers(c) for c in stage.candidates.chunks], dtype=bool) if stage else np.zeros(0, bool)
        if not gold.any():
            missed += 1
            continue
        found.append(Example(source, retriever.features(question, stage), gold, stage.candidates.first_stage))
    return found, missed


def source_weights(batch: list[Example]) -> np.ndarray:
    """Per example, 1 / (examples of its source): every source weighs the same; they sum to 1."""
    counts = {source: sum(e.source == source for e in batch) for source in {e.source for e in batch}}
    weights = np.array([1 / counts[e.source] for e in batch])
    return weights / weights.sum()


def loss_and_gradient(weights: np.ndarray, batch: list[Example], l2: float) -> tuple[float, np.ndarray]:
    """Weighted mean over questions of -log P(gold | candidates) under a softmax of the linear scores, plus L2."""
    loss, gradient = 0.0, np.zeros_like(weights)
    for example, share in zip(batch, source_weights(batch)):
        scores = example.features @ weights
        scores -= scores.max()
        p = np.exp(scores)
        p /= p.sum()
        gold_mass = p[example.gold].sum()
        loss -= share * np.log(max(gold_mass, 1e-300))
        q = np.where(example.gold, p / max(gold_mass, 1e-300), 0.0)  # posterior over the gold candidates
        gradient += share * (example.features.T @ (p - q))
    return loss + l2 * weights @ weights, gradient + 2 * l2 * weights


def fit(batch: list[Example], l2: float) -> np.ndarray:
    result = minimize(loss_and_gradient, np.zeros(batch[0].features.shape[1]), args=(batch, l2), jac=True,
                      method="L-BFGS-B", options={"maxiter": 500})
    return result.x


def scaling(batch: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and spread over every candidate of the batch (a constant feature's spread is 1)."""
    stacked = np.vstack([e.features for e in batch])
    scale = stacked.std(axis=0)
    return stacked.mean(axis=0), np.where(scale > 0, scale, 1.0)


def standardise(batch: list[Example], mean: np.ndarray, scale: np.ndarray) -> list[Example]:
    return [Example(e.source, (e.features - mean) / scale, e.gold, e.first_stage) for e in batch]


def ranking_metrics(batch: list[Example], score) -> dict:
    """Hit@1 and MRR@10 of the first gold candidate per source, and their mean over sources (candidate level:
    parts of one 条 count separately)."""
    by_source: dict[str, list[int]] = {}
    for example in batch:
        order = np.argsort(-score(example), kind="stable")
        by_source.setdefault(example.source, []).append(int(np.flatnonzero(example.gold[order])[0]) + 1)
    out = {source: {"n": len(ranks), "hit@1": round(sum(r == 1 for r in ranks) / len(ranks), 4),
                    "mrr@10": round(sum(1 / r for r in ranks if r <= 10) / len(ranks), 4)}
           for source, ranks in sorted(by_source.items())}
    out["mean"] = {k: round(float(np.mean([m[k] for m in out.values()])), 4) for k in ("hit@1", "mrr@10")}
    return out


def main() -> int:
    parser = experiment_parser(__doc__)
    parser.add_argument("--tunings", default=str(TUNINGS),
                        help="the held-out question tunings bench.train_encoder wrote (fold0 … fold4.safetensors)")
    parser.add_argument("--write", action="store_true", help="write the ranker into kb/search/rankers/")
    args = parse_experiment(parser)
    if args is None:
        return 0
    kb = KnowledgeBase.open(settings=load_settings(index_dir=Path(args.index)))
    folds = cross_fitted(Path(args.index), kb, Path(args.tunings))
    cross_fit = folds is not None
    if folds is None:
        print(f"warning: no cross-fitted tunings in {args.tunings}: features use the shipped tuning (in-sample)")
    batch: list[Example] = []
    coverage = {}
    for path in LOCAL_SETS:
        questions = load_questions(path)
        items = local_items(kb, questions)
        found, missed = [], 0
        for scorer, part in by_fold(folds, items) if folds else [(kb, items)]:
            more, lost = examples(ranking_retriever(scorer), part, path.stem)
            found, missed = found + more, missed + lost
        batch += found
        coverage[path.stem] = {"used": len(found), "answer_not_among_candidates": missed}

    order = list(range(len(batch)))
    random.Random(SEED).shuffle(order)
    cut = int(len(order) * VALIDATION_SHARE)
    validation, training = [batch[i] for i in order[:cut]], [batch[i] for i in order[cut:]]
    mean, scale = scaling(training)
    train_std, val_std = standardise(training, mean, scale), standardise(validation, mean, scale)
    first_stage = ranking_metrics(validation, lambda e: e.first_stage)
    # How well the tuned cosine alone ranks every training question (cross-fitted: each by a tuning that never saw it).
    tuned = FEATURES.index("tuned_gap")
    dense_alone = ranking_metrics(batch, lambda e: e.features[:, tuned])
    selection = {}
    for l2 in L2_GRID:
        weights = fit(train_std, l2)
        selection[str(l2)] = ranking_metrics(val_std, lambda e, w=weights: e.features @ w)
    best = max(L2_GRID, key=lambda l2: (selection[str(l2)]["mean"]["mrr@10"], -l2))
    mean, scale = scaling(batch)
    weights = fit(standardise(batch, mean, scale), best)
    meta = {"trained_on": coverage, "question_tuning_cross_fitted": cross_fit, "l2": best, "seed": SEED, "validation_share": VALIDATION_SHARE,
            "validation": {"first_stage": first_stage, "by_l2": selection},
            "tuned_dense_alone_all_questions": dense_alone, "script": "python -m bench.train_ranker"}
    figures = {**meta, "weights": dict(zip(FEATURES, map(float, np.round(weights, 4))))}
    write_result("train_ranker", figures)
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    if args.write:
        path = RANKERS_DIR / f"{kb.embedder.query_fingerprint}.json"
        LinearRanker(weights, mean, scale, meta).save(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
