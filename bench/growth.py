"""How search latency and memory grow with the knowledge base: 3k, 30k and ~60k chunks; exact vs approximate.

    python -m bench.growth

Each size is the default corpus plus STARD laws (whole laws, in a fixed random order) built with the
product's ingest (`build_index`; vectors come from the vector cache `python -m bench.stard build` filled).
Every size is then probed in a fresh process, so its memory is its own: the product's search (p50/p95/p99),
and the dense step alone with FAISS flat (exact, what the product uses) against HNSW and IVF, with the
recall@10 / recall@100 each approximate index keeps of the exact top lists.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from bench.common import SHARED, WORK, peak_rss_mb, percentiles, timed_ms, write_result
from bench.stard import STARD, load_articles, to_documents
from ingest.build import IngestReport, build_index, find_files, parse_files
from kb.config import PROJECT_ROOT, load_settings
from kb.knowledge_base import KnowledgeBase

SIZES = (3_000, 30_000, 60_000)


#: The float model, whose vectors of the STARD corpus `python -m bench.stard build` left in the vector cache.
BACKEND = "torch"


def build_sizes() -> list[Path]:
    settings = load_settings(embedding_backend=BACKEND)
    documents, chunks, _ = parse_files(find_files([settings.corpus_dir]), settings, IngestReport(settings.index_dir), False)
    laws, law_chunks = to_documents(load_articles(None, 0))
    by_law: dict[str, list] = {}
    for chunk in law_chunks:
        by_law.setdefault(chunk.doc_id, []).append(chunk)
    random.Random(11).shuffle(laws)
    indexes = []
    for size in SIZES:
        docs, rows = list(documents), list(chunks)
        for law in laws:
            if len(rows) + len(by_law[law.doc_id]) > size:
                continue
            docs.append(law)
            rows += by_law[law.doc_id]
        target = WORK / "indexes" / f"growth-{size // 1000}k"
        if not (target / "manifest.json").is_file():
            build_index(docs, rows, settings.with_(index_dir=target), progress=True)
        indexes.append(target)
        print(f"{target}: {len(rows)} chunks", flush=True)
    return indexes


def probe_queries() -> list[str]:
    items = [json.loads(line)["text"] for line in (STARD / "queries.jsonl").open(encoding="utf-8")]
    dev = SHARED / "eval" / "dev.jsonl"
    items += [json.loads(line)["q"] for line in dev.open(encoding="utf-8") if line.strip()] if dev.is_file() else []
    return random.Random(2).sample(items, 200)


def time_search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[dict, np.ndarray]:
    found, samples = [], []
    for q in queries:
        started = time.perf_counter()
        _, ids = index.search(q.reshape(1, -1), k)
        samples.append((time.perf_counter() - started) * 1000)
        found.append(ids[0])
    return percentiles(samples), np.array(found)


def recall(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    return round(float(np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx, exact)])), 4)


def probe(index_dir: Path) -> dict:
    """Run in its own process: the product's search, then flat vs HNSW vs IVF on the same vectors."""
    kb = KnowledgeBase.open(settings=load_settings(index_dir=index_dir, embedding_backend=BACKEND))
    items = probe_queries()
    for q in items[:5]:
        kb.search(q)
    search_ms = percentiles([timed_ms(kb.search, q) for q in items])
    rss_after_search = peak_rss_mb()
    vectors = kb.store.dense.reconstruct_n(0, kb.store.dense.ntotal)
    queries = kb.embedder.encode_queries(items)
    flat_ms, exact = time_search(kb.store.dense, queries, 100)
    result = {"chunks": len(kb.store.chunks), "search_ms": search_ms, "peak_rss_mb": round(rss_after_search),
              "dense": {"flat": {"search_ms": flat_ms, "bytes_per_vector": 4 * vectors.shape[1]}}}
    n, dim = vectors.shape
    hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    started = time.perf_counter()
    hnsw.add(vectors)
    build_s = time.perf_counter() - started
    for ef in (64, 128):
        hnsw.hnsw.efSearch = ef
        ms, ids = time_search(hnsw, queries, 100)
        result["dense"][f"hnsw32_ef{ef}"] = {"search_ms": ms, "recall@10": recall(ids, exact, 10),
                                             "recall@100": recall(ids, exact, 100), "build_s": round(build_s, 1)}
    nlist = max(16, int(4 * np.sqrt(n)))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    started = time.perf_counter()
    ivf.train(vectors)
    ivf.add(vectors)
    build_s = time.perf_counter() - started
    for nprobe in (8, 32):
        ivf.nprobe = nprobe
        ms, ids = time_search(ivf, queries, 100)
        result["dense"][f"ivf{nlist}_probe{nprobe}"] = {"search_ms": ms, "recall@10": recall(ids, exact, 10),
                                                        "recall@100": recall(ids, exact, 100), "build_s": round(build_s, 1)}
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(Path(args.probe))))
        return 0
    if not STARD.is_dir():
        print(f"skipped: {STARD} not found")
        return 0
    results = []
    for index in build_sizes():
        out = subprocess.run([sys.executable, "-m", "bench.growth", "--probe", str(index)], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    write_result("growth", {"sizes": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
