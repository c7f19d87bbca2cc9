"""A county deployment's replicas: one `kb serve` against two, on one Milvus server and one PostgreSQL log.

    python -m bench.replicas [--levels 1,8]

Starts a milvus-lite server (its own process, as a Milvus standalone) and PostgreSQL (Debian's package), ingests
corpus/ into Milvus with the product's ingest, then runs `kb serve` processes with the shared settings a compose
file gives its replicas (KB_STORE=milvus, KB_QUERY_LOG=postgresql://…, one KB_CONVERSATION_SECRET). The bounded
closed-loop load of bench.latency goes to /api/ask of one replica, then of two in turn (request n to replica
n mod 2, as a proxy spreads them): requests per second, latency percentiles, errors. Everything shares this
machine's cores, so two replicas here show the cost of sharing state, not the gain of a second machine.
Writes bench/results/replicas.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.common import write_result
from bench.latency import load, questions, requests_for
from bench.services import kb_serve, milvus_lite, postgresql, postgresql_bindir
from ingest.build import ingest
from kb.config import PROJECT_ROOT, load_settings

KB_NAME = "replicas"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,8", help="concurrent clients per level")
    args = parser.parse_args()
    if postgresql_bindir() is None:
        print("skipped: PostgreSQL is not installed")
        return 0
    levels = [int(c) for c in args.levels.split(",")]
    items = questions()
    with tempfile.TemporaryDirectory(prefix="kb-replicas-") as tmp, milvus_lite(Path(tmp) / "milvus") as milvus, \
            postgresql() as log_url:
        settings = load_settings(store="milvus", milvus_uri=milvus.uri, kb_name=KB_NAME)
        report = ingest([PROJECT_ROOT / "corpus"], settings)
        env = {"KB_STORE": "milvus", "KB_MILVUS_URI": milvus.uri, "KB_NAME": KB_NAME, "KB_QUERY_LOG": log_url,
               "KB_CONVERSATION_SECRET": "bench", "KB_RATE_PER_MINUTE": "1000000", "KB_RATE_BURST": "1000000"}
        figures: dict = {"passages": report.chunks, "questions": len(items), "levels": {}}
        with ExitStack() as stack:
            servers = [stack.enter_context(kb_serve(env, log=Path(tmp) / f"replica{i}.log")) for i in range(2)]
            figures["ready_s"] = [round(s.ready_s, 1) for s in servers]
            for replicas in (1, 2):
                bases = [s.base for s in servers[:replicas]]
                payloads = requests_for("/api/ask", items)
                asyncio.run(load(bases, "/api/ask", payloads, 1))  # warm-up, not recorded
                figures["levels"][f"{replicas} replica{'s' if replicas > 1 else ''}"] = [
                    asyncio.run(load(bases, "/api/ask", payloads, c)) for c in levels]
                print(replicas, figures["levels"], flush=True)
    figures["settings"] = {"store": "milvus-lite server", "query_log": "postgresql", "endpoint": "/api/ask",
                           "script": "python -m bench.replicas"}
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    write_result("replicas", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
