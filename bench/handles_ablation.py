"""What the question bank's handles change, step by step, on real and held-out questions.

    python -m bench.handles_ablation --index DIR     # DIR: an index of corpus/ built with its sidecars

Variants: the first stage alone (fusion, no learning), + the learned ranker (kb/search/rank.py, as shipped
before the bank), + the handle stage without the law router (kb/stores/handles.py; the stage bench.train_handles
fits without the router's column, var/bench/handles_without_router.json, when present), + the router
(kb/search/router.py: the shipped handle stage). Sets: stard_local_dev (real lay questions, never trained or
chosen on), dev.jsonl, and every BANK_STEP-th question of the bank's held-out articles (no handles exist for them;
the handle stage's L2 was chosen partly on them). Per set and variant: Hit@1, Hit@5, MRR@10, how often the first
hit is from the wrong law, and the median search time (embedding the question included).
Writes bench/results/handles_ablation.json.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench.common import SHARED, write_result
from bench.question_bank import held_out_bank
from bench.train_handles import WITHOUT_ROUTER_FILE
from bench.train_ranker import experiment_parser, parse_experiment
from kb.config import load_settings
from kb.evaluate import GoldQuestion, first_match_rank, load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.handle_stage import HANDLE_FEATURES
from kb.search.rank import LinearRanker

SETS = {"stard_local_dev": SHARED / "eval" / "stard_local_dev.jsonl", "dev": SHARED / "eval" / "dev.jsonl"}
#: Every third question of the bank's held-out articles (about 630 of 1,900): enough to compare the variants.
BANK_STEP = 3


def variants(kb: KnowledgeBase) -> dict[str, KnowledgeBase]:
    first = kb.with_params(replace(kb.params, method="weighted"))
    ranked = kb.with_params(replace(kb.params, method="ranked"))
    ranked.retriever.handle_ranker = None
    out = {"first stage": first, "+ ranker": ranked}
    if WITHOUT_ROUTER_FILE.is_file():
        handles = kb.with_params(replace(kb.params, method="ranked"))
        handles.retriever.handle_ranker = LinearRanker.for_model(WITHOUT_ROUTER_FILE.stem, WITHOUT_ROUTER_FILE.parent,
                                                                 HANDLE_FEATURES)
        out["+ handles"] = handles
    return {**out, "+ router": kb}


def measure(kb: KnowledgeBase, questions: list[GoldQuestion]) -> dict:
    ranks, wrong_law, times = [], 0, []
    for question in (q for q in questions if q.answerable):
        kb.embedder.forget_recent_questions()  # every variant's time includes embedding the question
        started = time.perf_counter()
        hits = kb.search(question.q, top_k=10)
        times.append((time.perf_counter() - started) * 1000)
        ranks.append(first_match_rank(question, hits))
        wrong_law += bool(hits) and bool(question.doc) and question.doc not in hits[0].doc_title
    n = len(ranks)
    return {"n": n, "hit@1": round(sum(r == 1 for r in ranks) / n, 4),
            "hit@5": round(sum(r is not None and r <= 5 for r in ranks) / n, 4),
            "mrr@10": round(sum(1 / r for r in ranks if r is not None) / n, 4),
            "wrong_law@1": round(wrong_law / n, 4), "median_ms": round(statistics.median(times), 1)}


def main() -> int:
    args = parse_experiment(experiment_parser(__doc__))
    if args is None:
        return 0
    kb = KnowledgeBase.open(settings=load_settings(index_dir=Path(args.index)))
    sets = {name: load_questions(path) for name, path in SETS.items() if path.is_file()}
    sets["bank held-out articles"] = held_out_bank()[::BANK_STEP]
    table: dict[str, dict] = {}
    for name, questions in sets.items():
        if not questions:
            continue
        table[name] = {label: measure(variant, questions) for label, variant in variants(kb).items()}
        for label, figures in table[name].items():
            print(f"{name:<32} {label:<12} " + "  ".join(f"{k} {v}" for k, v in figures.items()), flush=True)
    handles = kb.store.handles
    write_result("handles_ablation", {"index": str(args.index), "questions_attached": len(handles) if handles else 0,
                                      "sets": table, "script": "python -m bench.handles_ablation --index DIR"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
