"""Learn the law router (kb/search/router.py): which document a question is about, from its vector alone.

    python -m bench.train_router --index DIR [--write]

DIR is an index of corpus/ built with its sidecars. The router is a softmax over the documents' titles of the
model's own question vector (no tuning: it belongs to the model as built, like the handles), learnt from the
question bank (the sidecars' questions, with the vectors the index holds for them) and the real training
questions of bench.train_ranker (STARD's lay questions over corpus/, the team's), each real question counting as
`real_weight` bank questions. The L2 penalty and that weight are chosen on a fixed seeded 20 % validation part of
each real source beside the bank's held-out articles (bench/data/question_bank_heldout.jsonl: in no sidecar), by
the mean over the three sources of how often the router's first document is the gold one (mean log-likelihood
breaks ties); then the router is refitted on everything and, with --write, shipped as
kb/search/rankers/router-<model fingerprint>.json. bench/train_handles.py refits it without each fold of the
real questions (the same settings) so that the handle stage learns from the router's verdict on questions it
never saw.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from bench.common import write_result
from bench.crossfit import fold
from bench.question_bank import held_out_bank
from bench.train_ranker import LOCAL_SETS, SEED, VALIDATION_SHARE, experiment_parser, open_with_handles
from kb.evaluate import GoldQuestion, load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.rank import RANKERS_DIR
from kb.search.router import LawRouter

L2_GRID = (1e-7, 1e-6, 1e-5)
REAL_WEIGHT_GRID = (5.0, 20.0, 50.0)


@dataclass
class Labelled:
    """Questions with their vectors and gold documents (indexes into the titles), from one source."""

    source: str
    questions: list[str]
    vectors: np.ndarray
    labels: np.ndarray


@dataclass
class RouterData:
    """What the router is fitted on."""

    titles: list[str]
    bank: Labelled  # the sidecars' questions (the handles)
    real: list[Labelled]  # one per real training source


def router_data(kb: KnowledgeBase) -> RouterData:
    titles = sorted({doc.title for doc in kb.documents.values()})
    position = {title: i for i, title in enumerate(titles)}
    handles = kb.store.handles
    assert handles is not None
    bank = Labelled("bank", [h.question for h in handles.handles], handles.vectors.astype(np.float64),
                    np.array([position[kb.documents[h.doc_id].title] for h in handles.handles]))
    real = [labelled(kb, titles, path.stem, load_questions(path)) for path in LOCAL_SETS]
    return RouterData(titles, bank, real)


def labelled(kb: KnowledgeBase, titles: list[str], source: str, questions: list[GoldQuestion]) -> Labelled:
    """Answerable questions whose gold document names exactly one title, embedded with the model as built."""
    kept = []
    for question in (q for q in questions if q.answerable and q.doc):
        matching = [i for i, title in enumerate(titles) if question.doc in title]
        if len(matching) == 1:
            kept.append((question.q, matching[0]))
    texts = [q for q, _ in kept]
    return Labelled(source, texts, kb.embedder.encode_queries(texts, tuned=False).astype(np.float64),
                    np.array([label for _, label in kept]))


def fit_router(titles: list[str], parts: list[Labelled], weights: list[float], l2: float) -> LawRouter:
    """Weighted softmax regression (L-BFGS); each part's questions weigh its weight, the bias is not penalised."""
    vectors = np.vstack([p.vectors for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    sample = np.concatenate([np.full(len(p.labels), w) for p, w in zip(parts, weights)])
    sample /= sample.sum()
    n, classes = len(labels), len(titles)
    augmented = np.hstack([vectors, np.ones((n, 1))])
    penalised = np.ones((augmented.shape[1], 1))
    penalised[-1] = 0.0

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(augmented.shape[1], classes)
        logits = augmented @ w
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        loss = -(sample * np.log(p[np.arange(n), labels] + 1e-12)).sum() + l2 * ((w * penalised) ** 2).sum()
        p[np.arange(n), labels] -= 1.0
        gradient = augmented.T @ (p * sample[:, None]) + 2 * l2 * w * penalised
        return float(loss), gradient.ravel()

    start = np.zeros(augmented.shape[1] * classes)
    result = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", options={"maxiter": 300})
    return LawRouter(titles, result.x.reshape(augmented.shape[1], classes), {"l2": l2})


def split(part: Labelled) -> tuple[Labelled, Labelled]:
    """A fixed seeded VALIDATION_SHARE of a source's questions, and the rest."""
    order = list(range(len(part.labels)))
    random.Random(SEED).shuffle(order)
    cut = int(len(order) * VALIDATION_SHARE)
    return select(part, order[:cut]), select(part, order[cut:])


def select(part: Labelled, rows: list[int]) -> Labelled:
    return Labelled(part.source, [part.questions[i] for i in rows], part.vectors[rows], part.labels[rows])


def accuracy(router: LawRouter, parts: list[Labelled]) -> dict:
    """Per source: how often the router's first document is the gold one, and the mean log-probability of it."""
    return summary({part.source: (router.probabilities(part.vectors), part.labels) for part in parts})


def summary(predicted: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Per source (probabilities, gold labels) → accuracy and mean log-likelihood, and their mean over sources."""
    out = {}
    for source, (p, labels) in predicted.items():
        gold = p[np.arange(len(p)), labels]
        out[source] = {"n": len(labels), "accuracy": round(float((p.argmax(1) == labels).mean()), 4),
                       "log_likelihood": round(float(np.log(gold + 1e-12).mean()), 4)}
    out["mean"] = {k: round(float(np.mean([m[k] for m in out.values()])), 4) for k in ("accuracy", "log_likelihood")}
    return out


def vote_accuracy(kb: KnowledgeBase, titles: list[str], parts: list[Labelled]) -> dict:
    """The same figures for the handles' own vote (kb.stores.handles: the nearest handles' documents), the
    router's predecessor."""
    handles = kb.store.handles
    assert handles is not None
    predicted = {}
    for part in parts:
        shares = np.zeros((len(part.labels), len(titles)))
        for row, (question, vector) in enumerate(zip(part.questions, part.vectors)):
            for doc_id, share in handles.match(vector.astype(np.float32), question).law_share.items():
                shares[row, titles.index(kb.documents[doc_id].title)] += share
        predicted[part.source] = (shares, part.labels)
    return summary(predicted)


def fit_shipped(data: RouterData, l2: float, real_weight: float, leave_out_fold: int | None = None) -> LawRouter:
    """The router on the bank and the real questions (without one crossfit fold of them, when asked)."""
    real = [select(p, [i for i, q in enumerate(p.questions) if fold(q) != leave_out_fold]) for p in data.real]
    router = fit_router(data.titles, [data.bank, *real], [1.0] + [real_weight] * len(real), l2)
    router.meta.update({"real_weight": real_weight, "bank_questions": len(data.bank.labels),
                        "real_questions": {p.source: len(p.labels) for p in real}})
    return router


def main() -> int:
    parser = experiment_parser(__doc__)
    parser.add_argument("--write", action="store_true", help="ship the router in kb/search/rankers/")
    if (opened := open_with_handles(parser)) is None:
        return 0
    args, kb = opened
    data = router_data(kb)
    validation, fitting = zip(*(split(p) for p in data.real))
    measured = [*validation, labelled(kb, data.titles, "bank_heldout", held_out_bank())]
    grid = {"handles' vote": vote_accuracy(kb, data.titles, measured)}
    print("handles' vote", json.dumps(grid["handles' vote"]["mean"]), flush=True)
    settings = {f"l2 {l2}, real weight {w}": (l2, w) for l2 in L2_GRID for w in REAL_WEIGHT_GRID}
    for name, (l2, real_weight) in settings.items():
        router = fit_router(data.titles, [data.bank, *fitting], [1.0] + [real_weight] * len(fitting), l2)
        grid[name] = accuracy(router, measured)
        print(name, json.dumps(grid[name]["mean"]), flush=True)
    best = max(settings, key=lambda k: (grid[k]["mean"]["accuracy"], grid[k]["mean"]["log_likelihood"]))
    router = fit_shipped(data, *settings[best])
    router.meta.update({"seed": SEED, "validation_share": VALIDATION_SHARE, "script": "python -m bench.train_router"})
    write_result("train_router", {**router.meta, "documents": len(data.titles), "chosen": best, "validation": grid})
    print(f"chosen: {best}", json.dumps(grid[best], ensure_ascii=False))
    if args.write:
        path = RANKERS_DIR / f"router-{kb.embedder.fingerprint}.json"
        router.save(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
