"""The same knowledge base in both stores: retrieval quality and search latency, local index vs Milvus (issue 12).

    python -m bench.store_parity [--milvus-uri URI]

corpus/ is ingested into a fresh local index and into Milvus (a milvus-lite folder by default; give a server's
URI to measure one), both with the vector cache, so nothing is embedded twice. Then the evaluation questions
(../shared/eval/dev.jsonl and stard_local_dev.jsonl; skipped when missing) are searched in both, as `kb eval`
does (top 10, product defaults), and every search is timed. Writes bench/results/store_parity.json.
"""

from __future__ import annotations

import argparse
import shutil

from bench.common import SHARED, WORK, percentiles, timed, write_result
from ingest.build import ingest
from kb.config import load_settings
from kb.embedding.embedder import Embedder
from kb.evaluate import load_questions, score
from kb.knowledge_base import KnowledgeBase

SETS = ("dev", "stard_local_dev")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--milvus-uri", help="a Milvus server (default: a fresh milvus-lite folder under var/bench)")
    args = parser.parse_args()
    sets = {name: SHARED / "eval" / f"{name}.jsonl" for name in SETS}
    sets = {name: path for name, path in sets.items() if path.is_file()}
    if not sets:
        print("skipped: ../shared/eval is missing")
        return 0
    work = WORK / "store_parity"
    shutil.rmtree(work, ignore_errors=True)
    base = load_settings(index_dir=work / "index")
    embedder = Embedder(base)
    stores = {"local": base, "milvus": base.with_(store="milvus", kb_name="parity",
                                                  milvus_uri=args.milvus_uri or str(work / "milvus.db"))}
    results: dict = {"script": "python -m bench.store_parity", "sets": {}, "latency_ms": {}, "ingest_s": {}}
    kbs = {}
    for name, settings in stores.items():
        seconds, _ = timed(ingest, [base.corpus_dir], settings, embedder)
        results["ingest_s"][name] = round(seconds, 1)
        kbs[name] = KnowledgeBase.open(settings=settings, embedder=embedder)
    for store, kb in kbs.items():
        samples: list[float] = []

        def search(question: str, kb: KnowledgeBase = kb) -> list:
            seconds, hits = timed(kb.search, question, 10)
            samples.append(seconds * 1000)
            return hits

        for name, path in sets.items():
            metrics = score(load_questions(path), search)["metrics"]
            results["sets"].setdefault(name, {})[store] = metrics["overall"]
        results["latency_ms"][store] = {"searches": len(samples), **percentiles(samples)}
    for name, by_store in results["sets"].items():
        by_store["largest_difference"] = round(max(abs(by_store["milvus"][k] - by_store["local"][k])
                                                   for k in ("hit@1", "hit@5", "mrr@10")), 4)
    results["settings"] = {"milvus": "milvus-lite" if not args.milvus_uri else "server",
                           "index": "HNSW M16 efConstruction 200, ef 256; sparse inverted index (our BM25)",
                           "passages": kbs["local"].passage_count(), "cpus": "this machine"}
    print(results)
    write_result("store_parity", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
