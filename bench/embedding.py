"""Embedding, the cost of every ingest: float (torch) vs int8 (ONNX Runtime), and length-bucketed batching.

    python -m bench.embedding [--sample 400]

On the same sample of passages (default-corpus chunks, plus STARD articles when ../shared is there):
passages per second of each backend (median of repeated runs, alternating backends so both see the same
machine), cosine agreement of int8 with float, the latency of embedding one question, and torch with and
without length-sorted batches.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys

import numpy as np

from bench.common import SHARED, timed, timed_ms, write_result
from ingest.build import IngestReport, find_files, parse_files
from ingest.chunk import indexing_text
from kb.config import load_settings
from kb.embedding.embedder import Embedder

QUESTIONS = ["信访事项多长时间内办结？", "邻居家的树挡住了我家采光怎么办", "申请行政复议的期限是多少天",
             "法律援助可以向哪里申请", "雁石坪镇开展了哪些普法活动"]


def sample_passages(count: int, seed: int = 5) -> list[str]:
    """Half default-corpus chunks, half STARD articles (or all corpus chunks without ../shared)."""
    settings = load_settings()
    documents, chunks, _ = parse_files(find_files([settings.corpus_dir]), settings, IngestReport(settings.index_dir), False)
    by_id = {d.doc_id: d for d in documents}
    texts = [indexing_text(by_id[c.doc_id], c) for c in chunks]
    rng = random.Random(seed)
    stard = SHARED / "bench" / "stard" / "corpus.jsonl"
    if not stard.is_file():
        return rng.sample(texts, min(count, len(texts)))
    articles = [json.loads(line) for line in stard.open(encoding="utf-8")]
    picked = rng.sample(articles, count // 2)
    return rng.sample(texts, count - count // 2) + [f"{a['law']}\n{a['id']} {a['text']}" for a in picked]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    texts = sample_passages(args.sample)
    embedders = {backend: Embedder(load_settings(embedding_backend=backend)) for backend in ("torch", "onnx-int8")}
    seconds: dict[str, list[float]] = {name: [] for name in [*embedders, "torch-unsorted"]}
    vectors: dict[str, np.ndarray] = {}
    torch = embedders["torch"]
    by_length = sorted(texts, key=len)  # as ingest orders what it embeds (ingest/build.py), so batches hold
    for _ in range(args.repeats):       # texts of similar length
        for backend, embedder in embedders.items():
            took, vectors[backend] = timed(embedder.encode_passages, by_length)
            seconds[backend].append(took)
        # No length bucketing: batches in arrival order (each call sorts only its own 32 passages).
        shuffled = random.Random(1).sample(texts, len(texts))
        took, _ = timed(lambda: [torch.encode_passages(shuffled[i:i + torch.batch_size])
                                 for i in range(0, len(shuffled), torch.batch_size)])
        seconds["torch-unsorted"].append(took)
    cosines = np.sum(vectors["torch"] * vectors["onnx-int8"], axis=1)
    query_cos = np.sum(torch.encode_queries(QUESTIONS) * embedders["onnx-int8"].encode_queries(QUESTIONS), axis=1)
    query_ms = {}
    for backend, embedder in embedders.items():
        runs = [timed_ms(embedder.encode_queries, [QUESTIONS[i % len(QUESTIONS)]]) for i in range(40)]
        query_ms[backend] = round(statistics.median(runs), 1)
    rate = {name: round(len(texts) / statistics.median(runs), 1) for name, runs in seconds.items()}
    figures = {
        "passages": len(texts), "repeats": args.repeats, "passages_per_s": rate,
        "int8_speedup": round(rate["onnx-int8"] / rate["torch"], 2),
        "bucketing_speedup": round(rate["torch"] / rate["torch-unsorted"], 2),
        "cosine_int8_vs_float": {"min": round(float(cosines.min()), 4), "p1": round(float(np.percentile(cosines, 1)), 4),
                                 "median": round(float(np.median(cosines)), 4),
                                 "queries_min": round(float(query_cos.min()), 4)},
        "query_embed_ms_median": query_ms,
    }
    write_result("embedding", figures)
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
