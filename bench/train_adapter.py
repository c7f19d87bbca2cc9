"""Learn the query adapter (kb/adapter.py) from STARD's *train* questions, on the CPU, reproducibly.

    python -m bench.train_adapter [--index var/bench/stard/index] [--write]

Question vectors are made exactly as the product makes them (legal-term expansion, `query: ` prompt); the
passages are the full STARD index's vectors, left as they are. The loss is the softmax over all 55,956
articles of a question's gold articles (temperature TAU), so every other article is a negative. The train
questions are split 80/20: the rank and number of epochs are chosen on the 20 %, then the adapter is
refitted on all train questions and, with --write, saved into kb/adapters/<model fingerprint>/. STARD's dev
split is never read here.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import torch

from bench.common import WORK, write_result
from bench.stard import load_queries
from kb.adapter import ADAPTERS_DIR, QueryAdapter
from kb.config import load_settings
from kb.expand import expand_query
from kb.knowledge_base import KnowledgeBase

TAU = 0.02
SEED = 1234


def question_vectors(kb: KnowledgeBase, queries: list[dict]) -> np.ndarray:
    return kb.embedder.encode_queries([expand_query(q["text"]) for q in queries])


def gold_rows(kb: KnowledgeBase, queries: list[dict]) -> list[list[int]]:
    row_of = {c.chunk_id: i for i, c in enumerate(kb.chunks)}
    return [[row_of[g] for g in q["gold"] if g in row_of] for q in queries]


def fit(questions: np.ndarray, golds: list[list[int]], passages: torch.Tensor, rank: int, epochs: int,
        lr: float = 3e-3, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    torch.manual_seed(SEED)
    dim = questions.shape[1]
    down = torch.nn.Parameter(torch.randn(dim, rank) * 0.02)
    up = torch.nn.Parameter(torch.zeros(rank, dim))
    optimiser = torch.optim.Adam([down, up], lr=lr)
    q_all = torch.from_numpy(questions)
    order = list(range(len(golds)))
    rng = random.Random(SEED)
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            q = q_all[rows]
            moved = torch.nn.functional.normalize(q + (q @ down) @ up, dim=-1)
            log_p = torch.log_softmax(moved @ passages.T / TAU, dim=-1)
            losses = [-torch.logsumexp(log_p[n, golds[r]], dim=0) for n, r in enumerate(rows)]
            loss = torch.stack(losses).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return down.detach().numpy(), up.detach().numpy()


def train_on(kb: KnowledgeBase, queries: list[dict], rank: int, epochs: int, meta: dict | None = None) -> QueryAdapter:
    """An adapter fitted on these STARD questions over `kb` (the full STARD index); the chosen settings' way."""
    golds = gold_rows(kb, queries)
    keep = [i for i, g in enumerate(golds) if g]
    questions = question_vectors(kb, [queries[i] for i in keep])
    down, up = fit(questions, [golds[i] for i in keep], torch.from_numpy(kb.view.vectors), rank, epochs)
    return QueryAdapter(down, up, meta or {})


def dense_metrics(questions: np.ndarray, golds: list[list[int]], passages: np.ndarray) -> dict:
    scores = questions @ passages.T
    top = np.argsort(-scores, axis=1)[:, :100]
    r10, r100, mrr = [], [], []
    for ranked, gold in zip(top, golds):
        gold_set = set(gold)
        r10.append(len(gold_set & set(ranked[:10])) / len(gold_set))
        r100.append(len(gold_set & set(ranked[:100])) / len(gold_set))
        mrr.append(next((1 / r for r, i in enumerate(ranked[:10], 1) if i in gold_set), 0.0))
    return {"R@10": round(float(np.mean(r10)), 4), "R@100": round(float(np.mean(r100)), 4),
            "MRR@10": round(float(np.mean(mrr)), 4)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", default=str(WORK / "stard" / "index"))
    parser.add_argument("--ranks", default="16,64")
    parser.add_argument("--epochs", default="5,10,20")
    parser.add_argument("--write", action="store_true", help="save the chosen adapter into kb/adapters/")
    args = parser.parse_args()
    torch.set_num_threads(2)
    settings = load_settings(index_dir=Path(args.index), embedding_backend="torch")  # as bench.stard built it
    kb = KnowledgeBase.open(settings=settings)
    queries = load_queries("train", None)
    golds = gold_rows(kb, queries)
    keep = [i for i, g in enumerate(golds) if g]
    queries, golds = [queries[i] for i in keep], [golds[i] for i in keep]
    questions = question_vectors(kb, queries)
    passages_np = kb.view.vectors
    passages = torch.from_numpy(passages_np)
    split = list(range(len(queries)))
    random.Random(SEED).shuffle(split)
    cut = int(0.8 * len(split))
    fit_rows, val_rows = split[:cut], split[cut:]
    val_q, val_g = questions[val_rows], [golds[i] for i in val_rows]
    grid = {"none": dense_metrics(val_q, val_g, passages_np)}
    print("no adapter", grid["none"], flush=True)
    for rank in (int(r) for r in args.ranks.split(",")):
        for epochs in (int(e) for e in args.epochs.split(",")):
            down, up = fit(questions[fit_rows], [golds[i] for i in fit_rows], passages, rank, epochs)
            adapter = QueryAdapter(down, up, {})
            grid[f"rank{rank}_epochs{epochs}"] = dense_metrics(adapter.apply(val_q), val_g, passages_np)
            print(rank, epochs, grid[f"rank{rank}_epochs{epochs}"], flush=True)
    best = max((k for k in grid if k != "none"), key=lambda k: (grid[k]["R@10"], grid[k]["MRR@10"]))
    rank, epochs = (int(part.removeprefix("rank").removeprefix("epochs")) for part in best.split("_"))
    figures = {"train_questions": len(queries), "fit": len(fit_rows), "validation": len(val_rows), "tau": TAU,
               "grid_on_validation_dense_only": grid, "chosen": {"rank": rank, "epochs": epochs}}
    write_result("adapter_training", figures)
    if args.write:
        meta = {"model_id": kb.embedder.model_id, "fingerprint": kb.embedder.fingerprint, "rank": rank,
                "epochs": epochs, "tau": TAU, "seed": SEED, "trained_on": f"STARD train split ({len(queries)} questions)",
                "built_by": "python -m bench.train_adapter --write"}
        train_on(kb, queries, rank, epochs, meta).save(ADAPTERS_DIR / kb.embedder.fingerprint)
        print(f"wrote {ADAPTERS_DIR / kb.embedder.fingerprint}")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
