"""The two stores at STARD's scale (55,956 articles): quality, search latency and memory, local index vs Milvus.

    python -m bench.store_scale [--milvus-uri URI] [--questions N]   # default: a milvus-lite server it starts

The STARD index that `python -m bench.stard build --cap 0 --index var/bench/stard/index` wrote is the local store;
the same laws are ingested into Milvus (a milvus-lite folder under var/bench by default) with the product's
ingest, vectors from the vector cache. Each store is then measured in a fresh process, so its memory is its own:
time to open, STARD's dev questions searched as bench.ranking does (top 100, product defaults: R@10, MRR@10),
latency per search, and peak resident memory. Writes bench/results/store_scale.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from contextlib import ExitStack

from bench.common import WORK, peak_rss_mb, percentiles, timed, write_result
from bench.latency import memory_mb
from bench.services import milvus_lite
from bench.stard import STARD, evaluate, load_articles, load_queries, to_documents
from kb.config import load_settings

LOCAL_INDEX = WORK / "stard" / "index"


def settings_for(store: str, milvus_uri: str):
    if store == "local":
        return load_settings(index_dir=LOCAL_INDEX)
    return load_settings(store="milvus", kb_name="stard", milvus_uri=milvus_uri)


def measure(store: str, milvus_uri: str, questions: int) -> dict:
    """In this process: open the store, search STARD dev, time it; what a fresh server process would hold."""
    from kb.knowledge_base import KnowledgeBase

    queries = load_queries("dev", questions or None)
    open_s, kb = timed(KnowledgeBase.open, None, settings_for(store, milvus_uri))
    samples: list[float] = []
    search = kb.search

    def timed_search(*args, **kwargs):
        seconds, hits = timed(lambda: search(*args, **kwargs))
        samples.append(seconds * 1000)
        return hits

    kb.search = timed_search
    quality = evaluate(kb, queries)
    return {"passages": kb.passage_count(), "open_s": round(open_s, 1), "questions": len(queries),
            **{k: quality[k] for k in ("R@1", "R@5", "R@10", "R@100", "MRR@10")},
            "latency_ms": percentiles(samples), "peak_rss_mb": round(peak_rss_mb())}


def ingest_into_milvus(milvus_uri: str) -> dict:
    """STARD's laws into Milvus with the product's ingest (vectors from the vector cache)."""
    from ingest.milvus_sync import sync_to_milvus
    from kb.embedding.embedder import Embedder

    documents, chunks = to_documents(load_articles(None, 0))
    settings = settings_for("milvus", milvus_uri)
    seconds, reused = timed(sync_to_milvus, documents, chunks, settings, Embedder(settings))
    return {"laws": len(documents), "passages": len(chunks), "embedded": len(chunks) - reused,
            "seconds": round(seconds, 1)}


def step(arguments: list[str], milvus_uri: str) -> dict:
    output = subprocess.run([sys.executable, "-m", "bench.store_scale", *arguments, "--milvus-uri", milvus_uri],
                            capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--milvus-uri", help="a running Milvus (default: a milvus-lite server started here, in its "
                        "own process, as a county reaches a Milvus standalone; a folder: milvus-lite in-process)")
    parser.add_argument("--questions", type=int, default=0, help="STARD dev questions (default: all)")
    parser.add_argument("--measure", choices=["local", "milvus"], help=argparse.SUPPRESS)
    parser.add_argument("--ingest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.milvus_uri, args.questions)))
        return 0
    if args.ingest:
        print(json.dumps(ingest_into_milvus(args.milvus_uri)))
        return 0
    if not STARD.is_dir() or not (LOCAL_INDEX / "manifest.json").is_file():
        print(f"skipped: needs {STARD} and {LOCAL_INDEX} (python -m bench.stard build --cap 0 --index {LOCAL_INDEX})")
        return 0
    shutil.rmtree(WORK / "store_scale", ignore_errors=True)
    with ExitStack() as stack:
        server = None if args.milvus_uri else stack.enter_context(milvus_lite(WORK / "store_scale"))
        uri = args.milvus_uri or server.uri  # type: ignore[union-attr]
        kind = ("milvus-lite server (its own process)" if not args.milvus_uri else
                "server" if "://" in args.milvus_uri else "milvus-lite in the process")
        # Each step in its own process: milvus-lite's folder is held by the process that opened it.
        results = {"script": "python -m bench.store_scale", "milvus_ingest": step(["--ingest"], uri),
                   "settings": {"milvus": kind, "search": "product defaults, top 100"}}
        for store in ("local", "milvus"):
            results[store] = step(["--measure", store, "--questions", str(args.questions)], uri)
            print(store, results[store], flush=True)
        if server is not None and server.process is not None:  # the server's memory is not the client's
            results["milvus"]["server_memory"] = memory_mb(server.process.pid)
    results["largest_difference"] = round(max(abs(results["milvus"][k] - results["local"][k])
                                               for k in ("R@10", "MRR@10", "R@100")), 4)
    write_result("store_scale", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
