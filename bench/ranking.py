"""The ranking ablation: the first stage alone, with and without the tuned question encoder, and with the learned
second stage, on the three measurement sets, with the search latency of each.

    python -m bench.ranking [--index DIR] [--stard-index DIR]

- ../shared/eval/dev.jsonl (per tag) and ../shared/eval/stard_local_dev.jsonl over the default corpus (the index
  bench.ingest builds; `kb ingest --index var/bench/indexes/default-torch` makes the same);
- STARD's dev split over all 55,956 articles (the index `python -m bench.stard build` makes), when present.
None of these questions was used to train or choose anything of the ranking (bench/train_encoder.py,
bench/train_ranker.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

from bench.common import SHARED, WORK, timed_ms, write_result
from bench.stard import evaluate as stard_evaluate
from bench.stard import load_queries
from kb.config import load_settings
from kb.evaluate import load_questions, score
from kb.knowledge_base import KnowledgeBase

#: label → (method, question tuning).
VARIANTS = {
    "lexical (BM25)": ("lexical", "on"),
    "dense, untuned questions": ("dense", "off"),
    "dense": ("dense", "on"),
    "first stage (weighted fusion + bonuses), untuned questions": ("weighted", "off"),
    "first stage (weighted fusion + bonuses)": ("weighted", "on"),
    "ranked: first stage + learned second stage (default)": ("ranked", "on"),
}
FUSED, DEFAULT = "first stage (weighted fusion + bonuses)", "ranked: first stage + learned second stage (default)"
SETS = {"dev": SHARED / "eval" / "dev.jsonl", "stard_local_dev": SHARED / "eval" / "stard_local_dev.jsonl"}


def variants(index: Path, backend: str = "torch") -> dict[str, KnowledgeBase]:
    """Each variant over the same index; the question encoder with and without its tuning."""
    kbs = {tuning: KnowledgeBase.open(settings=load_settings(index_dir=index, embedding_backend=backend,
                                                             query_tuning=tuning)) for tuning in ("on", "off")}
    return {label: kbs[tuning].with_params(replace(kbs[tuning].params, method=method))
            for label, (method, tuning) in VARIANTS.items()}


def township(index: Path) -> dict:
    sets = {name: load_questions(path) for name, path in SETS.items() if path.is_file()}
    questions = [q.q for qs in sets.values() for q in qs if q.answerable]
    out = {}
    for label, variant in variants(index).items():
        variant.search(questions[0])  # warm-up
        out[label] = {name: score(qs, lambda q, v=variant: v.search(q, top_k=10))["metrics"]
                      for name, qs in sets.items()}
        out[label]["search_ms_p50"] = round(statistics.median(timed_ms(variant.search, q) for q in questions), 1)
        print(label, json.dumps({k: v.get("overall", v) if isinstance(v, dict) else v for k, v in out[label].items()},
                                ensure_ascii=False), flush=True)
    return out


def stard(index: Path) -> dict:
    queries = load_queries("dev", None)
    out = {"questions": len(queries)}
    for label, variant in variants(index).items():
        out["articles"] = len(variant.store.chunks)
        result = stard_evaluate(variant, queries)
        out[label] = {k: v for k, v in result.items() if k != "curve"}
        print("STARD", label, out[label], flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", default=str(WORK / "indexes" / "default-torch"))
    parser.add_argument("--stard-index", default=str(WORK / "stard" / "index"))
    args = parser.parse_args()
    index, stard_index = Path(args.index), Path(args.stard_index)
    if not (index / "manifest.json").is_file() or not all(p.is_file() for p in SETS.values()):
        print("skipped: needs the default index (python -m bench.ingest) and ../shared/eval")
        return 0
    figures = {"township": township(index)}
    if (stard_index / "manifest.json").is_file():
        figures["stard_dev"] = stard(stard_index)
    write_result("ranking", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
