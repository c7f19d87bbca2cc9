"""Retrieval quality: STARD (dev split, rebuilt corpus) beside the published figures, and the township dev set.

    python -m bench.quality

- STARD, all 55,956 articles indexed with the product's ingest (`python -m bench.stard build`, built here
  if missing: about 45 minutes on two cores): R@1/5/10/100, MRR@10 and the recall@k curve of lexical-only,
  dense-only and the product's fused retrieval on the 308 dev questions. Nothing was tuned on dev.
- int8 vs float on STARD: the same 308 dev questions over a 6,000-article slice (their gold articles plus
  other articles of the same laws) indexed with each backend.
- The township dev set (../shared/eval/dev.jsonl) on the default corpus with each backend (indexes from
  `python -m bench.ingest`): Hit@1/5, MRR@10 and answered / refused.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from bench.common import SHARED, WORK, write_result
from bench.ranking import DEFAULT, FUSED, variants
from bench.stard import STARD, evaluate, load_queries
from kb.config import PROJECT_ROOT, load_settings
from kb.evaluate import load_questions, score, score_answerability
from kb.knowledge_base import KnowledgeBase

#: Published / reference figures from ../shared/bench/stard/README.md and the issue (dev split unless noted).
REFERENCES = [
    {"method": "BM25, jieba (reference, this rebuild)", "R@10": 0.416, "R@100": 0.642, "MRR@10": 0.340},
    {"method": "dense e5-small (reference prototype)", "R@10": 0.536, "R@100": 0.758, "MRR@10": 0.436},
    {"method": "RRF, dense weight 0.7 (reference prototype)", "R@10": 0.543, "R@100": 0.766, "MRR@10": 0.447},
    {"method": "BM25 (paper, all queries)", "R@10": 0.394, "R@100": 0.649, "MRR@10": None},
    {"method": "Chinese RoBERTa, no fine-tuning (paper)", "R@10": None, "R@100": 0.663, "MRR@10": None},
    {"method": "dense fine-tuned on STARD (paper's best)", "R@10": 0.606, "R@100": 0.907, "MRR@10": 0.472},
]
SLICE_ARTICLES = 6000


def stard_index(name: str, backend: str, extra: list[str]) -> Path:
    index = WORK / name / "index"
    if not (index / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "bench.stard", "build", "--index", str(index), "--backend", backend,
                        *extra], cwd=PROJECT_ROOT, check=True)
    return index


def evaluate_variants(index: Path, backend: str, queries: list[dict], labels: list[str] | None = None) -> dict:
    """The ranking ablation's variants (bench.ranking) on one index, by STARD's measures."""
    kbs = variants(index, backend)
    results = {label: evaluate(kbs[label], queries) for label in labels or kbs}
    results["articles"] = len(kbs[DEFAULT].store.chunks)
    return results


def stard_quality() -> dict:
    queries = load_queries("dev", None)
    full_index = stard_index("stard", "torch", [])
    full = evaluate_variants(full_index, "torch", queries)
    slice_args = ["--split", "dev", "--questions", str(len(queries)), "--cap", str(SLICE_ARTICLES)]
    backends = {}
    for backend in ("torch", "onnx-int8"):
        index = stard_index(f"stard-dev-slice-{backend}", backend, slice_args)
        backends[backend] = evaluate_variants(index, backend, queries, ["dense", FUSED, DEFAULT])
    return {"questions": len(queries), "articles": full.pop("articles"), "full": full,
            "references": REFERENCES, "backends_on_slice": backends}


def township_quality() -> dict | None:
    dev = SHARED / "eval" / "dev.jsonl"
    if not dev.is_file():
        return None
    questions = load_questions(dev)
    check_set = load_questions(Path(__file__).parent / "data" / "abstention_check.jsonl")
    results = {}
    for backend in ("torch", "onnx-int8"):
        index = WORK / "indexes" / f"default-{backend}"
        if not (index / "manifest.json").is_file():
            continue
        loaded = KnowledgeBase.open(settings=load_settings(index_dir=index, embedding_backend=backend))
        for method in ("ranked", "weighted"):
            kb = loaded.with_params(replace(loaded.params, method=method))
            retrieval = score(questions, kb.search)["metrics"]
            answers = score_answerability(questions, lambda q: kb.ask(q).answerable)
            label = f"{backend} (default: ranked)" if method == "ranked" else f"{backend}, first stage only"
            results[label] = {"retrieval": retrieval["overall"], "per_tag": retrieval, "answerability": answers,
                              "check_set_answerability": score_answerability(check_set, lambda q: kb.ask(q).answerable)}
    return results


def main() -> int:
    argparse.ArgumentParser(description=__doc__).parse_args()
    figures = {"township_dev": township_quality()}
    if STARD.is_dir():
        figures["stard"] = stard_quality()
    else:
        print(f"skipped STARD: {STARD} not found")
    write_result("quality", figures)
    print(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
