"""Fit the answer stage's "can the knowledge base answer this?" models on training data (kb/answers/answerable.py).

    python -m bench.calibrate_answerable [--index DIR] [--write]

logit = bias + w_dense · (best cosine − centre) · 100 + w_cover · (coverage − 0.5) · 4 [+ w_vector · question
vector], where the best cosine is how close in meaning the nearest passage is, coverage the idf-weighted share
of the question's words found in the passages (kb.answers.answer), and the question vector the model's own embedding of
the question (what it is about). Two fits, by class-balanced L2-regularised logistic regression:

1. the constants of kb.config.AnswerParams (no vector: any embedding model), on the answerable training
   questions (../shared/eval/stard_local_train.jsonl, bench/data/train_local.jsonl) and
   bench/data/abstention_calibration.jsonl (off-topic questions, a few answerable ones); printed;
2. the default model's full model, on the same plus the questions of bench/data/near_domain_fit.jsonl about
   services and laws the documents do not cover (what a township's citizens ask that these documents do not
   answer). Its questions about the township itself (a figure, another year, another place) are left to the
   checks of kb/answers/evidence.py: the township is the report's topic, and a vector weight learnt from them would
   refuse the report's own questions. Its L2 weight and its recall target are chosen by 5-fold
   cross-validation: the most near-domain questions refused while the target share (97, 98 or 99 %) of each
   source's answerable questions is answered, the highest target of equals (the issue allows few wrongly
   refused questions, and a held-out set is refused more than cross-validation says). Its bias is shifted so
   that the threshold 0.5 answers that share of each source's answerable training questions in
   cross-validation. --write saves it
   to kb/answers/answer_models/<model fingerprint>.json.

The measurement sets are not read (dev.jsonl, stard_local_dev.jsonl, bench/data/abstention_check.jsonl,
bench/data/near_domain_check.jsonl). The tuned question encoder learnt from the answerable training questions,
so each question's cosine comes from the tuning that has not seen it (bench/crossfit.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from bench.common import SHARED, WORK, write_result
from bench.crossfit import cross_fitted, fold
from kb.answers.answerable import ANSWER_MODELS_DIR, AnswerModel
from kb.config import PROJECT_ROOT, AnswerParams, load_settings
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.rank import term_coverage

DATA = PROJECT_ROOT / "bench" / "data"
SETS = (SHARED / "eval" / "stard_local_train.jsonl", DATA / "train_local.jsonl", DATA / "abstention_calibration.jsonl")
NEAR_DOMAIN = DATA / "near_domain_fit.jsonl"
#: The near-domain kinds the full model learns from (the others are kb/answers/evidence.py's).
VECTOR_KINDS = ("service", "law_absent")
L2 = 0.01
#: The full model's candidates for its L2 weight and its answerable recall target, and its vector's scale.
VECTOR_L2 = (0.001, 0.01, 0.1)
RECALLS = (0.97, 0.98, 0.99)
VECTOR_SCALE = 10.0
FOLDS, SEED = 5, 1234


def evidence(kb: KnowledgeBase, question: str, params: AnswerParams) -> tuple[float, float, np.ndarray]:
    """The model's inputs, exactly as KnowledgeBase.ask computes them."""
    retrieval = kb.retrieve(question, params.passages)
    return (retrieval.top_dense, term_coverage(question, retrieval.hits, kb.store.idf),
            np.ravel(retrieval.question_vector))


def fit(x: np.ndarray, y: np.ndarray, l2: float = L2) -> np.ndarray:
    """(bias, weights…) of a class-balanced, L2-regularised logistic regression."""
    share = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum())
    design = np.column_stack([np.ones(len(x)), x])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        p = 1 / (1 + np.exp(-np.clip(design @ w, -60, 60)))
        eps = 1e-12
        value = -np.sum(share * (y * np.log(p + eps) + (~y) * np.log(1 - p + eps))) + l2 * w[1:] @ w[1:]
        gradient = design.T @ (share * (p - y)) + 2 * l2 * np.r_[0.0, w[1:]]
        return value, gradient

    return minimize(loss, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B").x


def cross_validated(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Each question's logit from the fit on the other folds."""
    folds = np.random.default_rng(SEED).integers(0, FOLDS, len(y))
    logits = np.zeros(len(y))
    for k in range(FOLDS):
        held = folds == k
        w = fit(x[~held], y[~held], l2)
        logits[held] = w[0] + x[held] @ w[1:]
    return logits


def fit_full_model(x: np.ndarray, y: np.ndarray, near: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, dict]:
    """The L2 weight and recall target with the most near-domain refusals (cross-validated; the highest target,
    then the smallest weight, of equals), refitted on everything, with the bias shifted to put that cut at
    logit 0."""
    trials = {}
    for l2 in VECTOR_L2:
        logits = cross_validated(x, y, l2)
        for target in RECALLS:
            # The target in every source: pooled, the many STARD questions would hide the team's 信访 and
            # report ones.
            cut = min(float(np.quantile(logits[y & (source == name)], 1 - target)) for name in set(source[y]))
            recall = {name: round(float((logits[y & (source == name)] >= cut).mean()), 3)
                      for name in sorted(set(source[y]))}
            trials[(l2, target)] = {"cut": cut, "near_domain_refused": round(float((logits[near] < cut).mean()), 3),
                                    "off_topic_refused": round(float((logits[~y & ~near] < cut).mean()), 3),
                                    "answerable_answered_by_source": recall}
    best = max(trials, key=lambda k: (trials[k]["near_domain_refused"], k[1], -k[0]))
    w = fit(x, y, best[0])
    w[0] -= trials[best]["cut"]
    return w, {"l2": best[0], "recall_target": best[1],
               "cross_validation": {f"l2={k[0]} recall={k[1]}": v for k, v in trials.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=str(WORK / "indexes" / "default-torch"))
    parser.add_argument("--write", action="store_true", help="save the full model to kb/answers/answer_models/")
    args = parser.parse_args()
    if not all(p.is_file() for p in (*SETS, NEAR_DOMAIN)):
        print("skipped: training questions missing")
        return 0
    kb = KnowledgeBase.open(settings=load_settings(index_dir=Path(args.index)))
    folds = cross_fitted(Path(args.index), kb)
    if folds is None:
        print("warning: no held-out question tunings (python -m bench.train_encoder): cosines are in-sample")
    params = kb.answer_params
    questions = [q for path in SETS for q in load_questions(path)]
    near_domain = [q for q in load_questions(NEAR_DOMAIN) if q.kind in VECTOR_KINDS]
    inputs = [evidence(folds[fold(q.q)] if folds else kb, q.q, params) for q in questions + near_domain]
    basic = np.array([[(d - params.dense_centre) * 100, (c - 0.5) * 4] for d, c, _ in inputs])
    vectors = np.array([v for _, _, v in inputs]) * VECTOR_SCALE
    y = np.array([q.answerable for q in questions + near_domain])
    near = np.r_[np.zeros(len(questions), dtype=bool), np.ones(len(near_domain), dtype=bool)]

    n = len(questions)  # 1. AnswerParams: without the near-domain questions and the vector
    bias, w_dense, w_cover = fit(basic[:n], y[:n])
    answered = (bias + basic[:n] @ np.array([w_dense, w_cover])) >= 0
    source = np.array([p.stem for p in SETS for _ in load_questions(p)] + ["near_domain_fit"] * len(near_domain))
    full, choice = fit_full_model(np.column_stack([basic, vectors]), y, near, source)  # 2. the full model
    full_answered = (full[0] + np.column_stack([basic, vectors]) @ full[1:]) >= 0
    figures = {
        "constants": {"bias": round(float(bias), 3), "w_dense": round(float(w_dense), 3),
                      "w_cover": round(float(w_cover), 3), "dense_centre": params.dense_centre},
        "training": {"answerable": int(y[:n].sum()), "unanswerable": int((~y[:n]).sum()),
                     "answerable_answered": int((answered & y[:n]).sum()),
                     "unanswerable_answered": int((answered & ~y[:n]).sum())},
        "full_model": {**choice, "near_domain_questions": len(near_domain),
                       "in_sample": {"answerable_answered": round(float(full_answered[y].mean()), 3),
                                     "near_domain_refused": round(float((~full_answered[near]).mean()), 3)}},
        "question_tuning_cross_fitted": folds is not None,
        "script": "python -m bench.calibrate_answerable --write",
    }
    if args.write:
        path = ANSWER_MODELS_DIR / f"{kb.embedder.fingerprint}.json"
        AnswerModel(float(full[0]), float(full[1]), float(full[2]), params.dense_centre,
                    (full[3:] * VECTOR_SCALE).astype(np.float32),
                    {"fitted_by": "python -m bench.calibrate_answerable --write", **choice}).save(path)
        print("wrote", path)
    write_result("calibrate_answerable", figures)
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
