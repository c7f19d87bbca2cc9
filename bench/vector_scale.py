"""Vector search at county and province scale: the exact FAISS index the product uses today, against approximate
indexes, locally and in Milvus (issue 12's sizing figures).

    python -m bench.vector_scale [--sizes 60000,1000000] [--queries 200] [--milvus-max 60000] [--real DIR]

The data are synthetic, as the issue allows (the embedding model need not run): 384-dimensional unit vectors
drawn around 2,000 cluster centres, since real passage vectors are clustered by topic, not uniform; the queries
are drawn the same way. For each size:

- FAISS `IndexFlatIP`: exact, what `kb` uses now; the ground truth for recall;
- FAISS HNSW (M 32, efConstruction 80, efSearch 64) and IVF-Flat (nlist 4·√N, nprobe 16): approximate;
- Milvus through `pymilvus` and `milvus-lite` with an HNSW index (M 16, ef 64), up to --milvus-max vectors.
  milvus-lite answers through a local gRPC server, so its latency includes the client round trip.

Synthetic clusters are easier than real passages, so the approximate indexes are also measured on real
vectors when the STARD index is present (--real, default var/bench/stard/index, built by `python -m
bench.stard build`): its 55,956 article vectors, and STARD's dev questions embedded as the product embeds
questions.

Reported per index: build (or insert + index) seconds, single-query latency p50/p95 (one thread, top 10),
recall@10 against the exact result, and the memory the index holds (FAISS: bytes it serialises to; Milvus:
the size of its data folder). Writes bench/results/vector_scale.json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from bench.common import SHARED, WORK, percentiles, write_result

DIM = 384
CLUSTERS = 2_000
TOP_K = 10
SEED = 12


def synthetic(n: int, queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors (a member's cosine to its centre is about 0.7), and queries drawn the same way:
    new points, whose nearest neighbours are many similar passages, as a real question's are."""
    centres = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)

    def members(count: int) -> np.ndarray:
        points = centres[rng.integers(0, CLUSTERS, count)] + rng.normal(size=(count, DIM)).astype(np.float32)
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    data = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        data[start : min(n, start + 100_000)] = members(min(n, start + 100_000) - start)
    return data, members(queries)


def timed_searches(search, queries: np.ndarray) -> tuple[np.ndarray, dict]:
    """Ids of each query's top 10, and the latency percentiles of single-query searches."""
    ids, latency = [], []
    for query in queries:
        started = time.perf_counter()
        ids.append(search(query))
        latency.append((time.perf_counter() - started) * 1000)
    return np.array(ids), percentiles(latency)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return round(float(np.mean([len(set(f) & set(t)) / TOP_K for f, t in zip(found, truth)])), 4)


def faiss_index(kind: str, data: np.ndarray) -> faiss.Index:
    n = len(data)
    if kind == "faiss_flat":
        index = faiss.IndexFlatIP(DIM)
    elif kind == "faiss_hnsw":
        index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 64
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = data[np.random.default_rng(SEED).choice(n, min(n, 40 * nlist), replace=False)]
        index.train(sample)
        index.nprobe = 16
    index.add(data)
    return index


def measure_faiss(kind: str, data: np.ndarray, queries: np.ndarray, truth: np.ndarray | None) -> tuple[dict, np.ndarray]:
    started = time.perf_counter()
    index = faiss_index(kind, data)
    build_s = time.perf_counter() - started
    found, latency = timed_searches(lambda q: index.search(q[None, :], TOP_K)[1][0], queries)
    figures = {"build_s": round(build_s, 1), "latency_ms": latency,
               "index_mb": round(faiss.serialize_index(index).nbytes / 2**20, 1)}
    if truth is not None:
        figures["recall_at_10"] = recall(found, truth)
    return figures, found


def measure_milvus(data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict:
    """milvus-lite with an HNSW index, inserted in batches and flushed (searching before the flush is ~20×
    slower: the rows are still in the growing segment)."""
    from pymilvus import DataType, MilvusClient

    folder = Path(tempfile.mkdtemp(prefix="kb-milvus-scale-"))
    try:
        client = MilvusClient(str(folder / "milvus.db"))
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("kb_name", DataType.VARCHAR, max_length=32, is_partition_key=True)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=DIM)
        index = client.prepare_index_params()
        index.add_index("dense", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 80})
        client.create_collection("scale", schema=schema, index_params=index)
        started = time.perf_counter()
        for start in range(0, len(data), 5_000):
            rows = [{"id": i, "kb_name": "default", "dense": data[i]} for i in range(start, min(len(data), start + 5_000))]
            client.insert("scale", rows)
        client.flush("scale")
        build_s = time.perf_counter() - started

        def search(query: np.ndarray) -> list[int]:
            hits = client.search("scale", data=[query.tolist()], anns_field="dense", limit=TOP_K, output_fields=["id"],
                                 search_params={"params": {"ef": 64}}, filter='kb_name == "default"')
            return [hit["id"] for hit in hits[0]]

        found, latency = timed_searches(search, queries)
        client.close()
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        return {"build_s": round(build_s, 1), "latency_ms": latency, "recall_at_10": recall(found, truth),
                "data_mb": round(size / 2**20, 1)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def real_vectors(index_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The STARD index's article vectors and its dev questions' vectors, or None when either is missing."""
    if not (index_dir / "dense.faiss").is_file() or not (SHARED / "bench" / "stard").is_dir():
        return None
    from bench.stard import load_queries
    from kb.config import load_settings
    from kb.embedding.embedder import Embedder

    stored = faiss.read_index(str(index_dir / "dense.faiss"))
    data = stored.reconstruct_n(0, stored.ntotal)
    questions = [q["text"] for q in load_queries("dev", None)]
    return data, Embedder(load_settings()).encode_queries(questions).astype(np.float32)


def measure_all(data: np.ndarray, queries: np.ndarray, milvus: bool) -> dict:
    figures = {}
    figures["faiss_flat"], truth = measure_faiss("faiss_flat", data, queries, None)
    for kind in ("faiss_hnsw", "faiss_ivf"):
        figures[kind], _ = measure_faiss(kind, data, queries, truth)
    if milvus:
        figures["milvus_lite_hnsw"] = measure_milvus(data, queries, truth)
    figures["raw_vectors_mb"] = round(data.nbytes / 2**20, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="60000,1000000", help="comma-separated numbers of vectors")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus-max", type=int, default=60_000, help="largest size also loaded into milvus-lite")
    parser.add_argument("--real", type=Path, default=WORK / "stard" / "index", help="an index of real vectors")
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    results = {"dim": DIM, "top_k": TOP_K, "queries": args.queries, "sizes": {}}
    for n in (int(s) for s in args.sizes.split(",")):
        data, queries = synthetic(n, args.queries, np.random.default_rng(SEED))
        results["sizes"][str(n)] = measure_all(data, queries, n <= args.milvus_max)
        print(n, results["sizes"][str(n)], flush=True)
    real = real_vectors(args.real)
    if real is None:
        print(f"real vectors skipped: no {args.real / 'dense.faiss'} or no ../shared/bench/stard")
    else:
        data, queries = real
        results["real_stard"] = {"vectors": len(data), "queries": len(queries),
                                 **measure_all(data, queries, len(data) <= args.milvus_max)}
        print("STARD", results["real_stard"], flush=True)
    print("wrote", write_result("vector_scale", results))


if __name__ == "__main__":
    main()
