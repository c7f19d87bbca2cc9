"""Fit the answer stage's "can the knowledge base answer this?" model (kb/config.py AnswerParams) on training data.

    python -m bench.calibrate_answerable [--index DIR]

confidence = sigmoid(bias + w_dense · (best cosine − centre) · 100 + w_cover · (coverage − 0.5) · 4), where the
best cosine is how close in meaning the nearest passage is and coverage the idf-weighted share of the question's
words found in the passages the answer would quote (kb.answer). Fitted by class-balanced logistic regression
(answerable and unanswerable questions weigh the same in total, so the threshold 0.5 sits between the classes):

- answerable: the training questions (../shared/eval/stard_local_train.jsonl, bench/data/train_local.jsonl);
- unanswerable, and a few more answerable ones: bench/data/abstention_calibration.jsonl.

The measurement sets are not read (dev.jsonl, stard_local_dev.jsonl, bench/data/abstention_check.jsonl); the
script prints the constants to put into AnswerParams and the confusion matrix on its own training data. The
tuned question encoder learnt from the answerable training questions, so each question's cosine comes from the
tuning that has not seen it (bench/crossfit.py); run bench.train_ranker --write first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from bench.common import SHARED, WORK, write_result
from bench.crossfit import cross_fitted, half
from kb.answer import term_coverage
from kb.config import PROJECT_ROOT, AnswerParams, load_settings
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase

SETS = (SHARED / "eval" / "stard_local_train.jsonl", PROJECT_ROOT / "bench" / "data" / "train_local.jsonl",
        PROJECT_ROOT / "bench" / "data" / "abstention_calibration.jsonl")
L2 = 0.01


def evidence(kb: KnowledgeBase, question: str, params: AnswerParams) -> tuple[float, float]:
    """The two inputs of the model, exactly as KnowledgeBase.ask computes them."""
    retrieval = kb.retrieve(question, params.passages)
    return retrieval.top_dense, term_coverage(question, retrieval.hits, kb.view.lexical)


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(bias, w_dense, w_cover) of a class-balanced, lightly L2-regularised logistic regression."""
    share = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum())
    design = np.column_stack([np.ones(len(x)), x])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        p = 1 / (1 + np.exp(-(design @ w)))
        eps = 1e-12
        value = -np.sum(share * (y * np.log(p + eps) + (~y) * np.log(1 - p + eps))) + L2 * w[1:] @ w[1:]
        gradient = design.T @ (share * (p - y)) + 2 * L2 * np.r_[0.0, w[1:]]
        return value, gradient

    return minimize(loss, np.zeros(3), jac=True, method="L-BFGS-B").x


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=str(WORK / "indexes" / "default-torch"))
    args = parser.parse_args()
    if not all(p.is_file() for p in SETS):
        print("skipped: training questions missing")
        return 0
    kb = KnowledgeBase.open(settings=load_settings(index_dir=Path(args.index)))
    halves = cross_fitted(Path(args.index), kb)
    if halves is None:
        print("warning: no held-out question tunings (python -m bench.train_encoder): cosines are in-sample")
    params = kb.answer_params
    questions = [q for path in SETS for q in load_questions(path)]
    raw = np.array([evidence(halves[half(q.q)] if halves else kb, q.q, params) for q in questions])
    x = np.column_stack([(raw[:, 0] - params.dense_centre) * 100, (raw[:, 1] - 0.5) * 4])
    y = np.array([q.answerable for q in questions])
    bias, w_dense, w_cover = fit(x, y)
    answered = (bias + x @ np.array([w_dense, w_cover])) >= 0
    figures = {
        "constants": {"bias": round(float(bias), 3), "w_dense": round(float(w_dense), 3),
                      "w_cover": round(float(w_cover), 3), "dense_centre": params.dense_centre},
        "training": {"answerable": int(y.sum()), "unanswerable": int((~y).sum()),
                     "answerable_answered": int((answered & y).sum()),
                     "unanswerable_answered": int((answered & ~y).sum())},
        "question_tuning_cross_fitted": halves is not None,
        "script": "python -m bench.calibrate_answerable",
    }
    write_result("calibrate_answerable", figures)
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
