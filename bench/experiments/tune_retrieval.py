"""Compare retrieval settings on the township dev set and on a STARD train subset (the figures in docs/retrieval.md).

    python -m bench.experiments.tune_retrieval --index index --stard-index /tmp/stard-train/index \
        '{"method": "rrf"}' '{"dense_weight": 0.8}' ...

Each argument is a JSON object of kb.config.RetrievalParams fields that differ from the defaults; `{}` is the
default. The STARD subset index is made by `python -m bench.stard build --split train --questions 300`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from bench.common import SHARED
from bench.stard import STARD, evaluate, load_queries
from kb.config import RetrievalParams
from kb.evaluate import load_questions, score
from kb.knowledge_base import KnowledgeBase

DEV = SHARED / "eval" / "dev.jsonl"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", nargs="*", default=["{}"])
    parser.add_argument("--index", default="index")
    parser.add_argument("--stard-index")
    parser.add_argument("--stard-questions", type=int, default=300)
    args = parser.parse_args()
    if not DEV.is_file():
        print(f"skipped: {DEV} not found")
        return 0
    dev_kb = KnowledgeBase.open(args.index)
    stard_kb = KnowledgeBase.open(args.stard_index, embedder=dev_kb.embedder) if args.stard_index else None
    questions = load_questions(DEV)
    stard_queries = load_queries("train", args.stard_questions) if stard_kb and STARD.is_dir() else []
    for variant in args.variants:
        params = replace(RetrievalParams(), **json.loads(variant))
        tuned = dev_kb.with_params(params)
        dev = score(questions, lambda q: tuned.search(q, top_k=10))["metrics"]["overall"]
        line = f"{variant:<50} dev Hit@1 {dev['hit@1']:.3f} Hit@5 {dev['hit@5']:.3f} MRR@10 {dev['mrr@10']:.3f}"
        if stard_queries:
            s = evaluate(stard_kb.with_params(params), stard_queries)
            line += f" | STARD-train R@10 {s['R@10']:.3f} R@100 {s['R@100']:.3f} MRR@10 {s['MRR@10']:.3f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
