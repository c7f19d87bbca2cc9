"""Dense top-k: FAISS flat inner-product search against a plain numpy product + argpartition, the two paths the
library once had side by side (one is kept: FAISS, kb/stores/local.py). Synthetic unit vectors, so the embedding
model need not run; 200 candidates as retrieval asks for; unfiltered and with a filter allowing 1 row in 7.

    python -m bench.dense_topk [--sizes 3000,60000] [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import faiss
import numpy as np

from bench.common import timed_ms, write_result

DIMENSION = 384
K = 200


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    return round(statistics.median(timed_ms(fn) for _ in range(repeats)), 3)


def measure(size: int, repeats: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(DIMENSION)
    index.add(vectors)
    query = vectors[:1].copy()
    allowed = np.zeros(size, dtype=bool)
    allowed[::7] = True
    bits = np.packbits(allowed, bitorder="little")
    selector = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(size, faiss.swig_ptr(bits)))
    pool = np.flatnonzero(allowed)
    return {
        "size": size,
        "faiss_ms": _median_ms(lambda: index.search(query, K), repeats),
        "numpy_ms": _median_ms(lambda: np.argpartition(-(vectors @ query[0]), K - 1)[:K], repeats),
        "faiss_filtered_ms": _median_ms(lambda: index.search(query, K, params=selector), repeats),
        "numpy_filtered_ms": _median_ms(lambda: pool[np.argpartition(-(vectors[pool] @ query[0]), K - 1)[:K]],
                                        repeats),
        "vectors_mb": round(vectors.nbytes / 2**20, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="3000,60000")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    figures = {"k": K, "dimension": DIMENSION, "threads": faiss.omp_get_max_threads(),
               "sizes": [measure(int(n), args.repeats) for n in args.sizes.split(",")]}
    write_result("dense_topk", figures)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
