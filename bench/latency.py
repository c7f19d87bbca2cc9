"""Search and answer latency, in-process and over HTTP under load; memory, index size, time to ready.

    python -m bench.latency [--index DIR] [--backend torch|onnx-int8] [--levels 1,8,32]

Questions are written as villagers ask them (the bank's held-out articles, bench/data) and never repeated within
a run: the server remembers its last 256 questions' vectors, and a citizen's question is new. In-process:
p50/p95/p99 of KnowledgeBase.search and .ask over 120 of them, each embedded anew, and how much of it is
embedding the question. HTTP: a real `kb serve` on 127.0.0.1 (rate limit lifted), time from process start to
/readyz, then a bounded closed-loop load generator (N concurrent clients, a fixed number of requests and a
time cap per level) against /api/search, /api/ask, and /api/ask with the question before it in `history` (the
conversations of bench/data: a follow-up reads the question six ways);
latency percentiles, requests per second, and the server's resident memory (current and peak) afterwards. The
load generator runs on the same two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.common import PROJECT_ROOT, WORK, percentiles, timed_ms, write_result
from bench.services import kb_serve
from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase

#: Requests per level (bounded) and the most seconds a level may run.
REQUESTS = {1: 120, 8: 240, 32: 320}
LEVEL_SECONDS = 90.0


DATA = PROJECT_ROOT / "bench" / "data"
#: What each load level sends: label → (method, path).
ENDPOINTS = {"/api/search": ("GET", "/api/search"), "/api/ask": ("POST", "/api/ask"),
             "/api/ask with history": ("POST", "/api/ask")}
#: Questions timed in-process.
IN_PROCESS_QUESTIONS = 120


def _rows(name: str) -> list[dict]:
    path = DATA / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def questions() -> list[str]:
    """Distinct questions in villagers' words (the bank's held-out articles, bench/data): the server keeps the
    vectors of its last 256 questions (kb.embedding.embedder.RECENT_QUESTIONS), so a load that repeated a few
    questions would time remembered vectors, not a citizen's new question."""
    return list(dict.fromkeys(row["q"] for row in _rows("question_bank_heldout.jsonl")))


def conversations() -> list[dict]:
    """Every conversation of bench/data (follow-ups, three-turn ones, topic switches): question and history."""
    rows = [row for path in sorted(DATA.glob("*.jsonl")) for row in _rows(path.name) if row.get("history")]
    return [{"question": row["q"], "history": row["history"]} for row in rows]


def requests_for(label: str, items: list[str]) -> list[dict]:
    """The query parameters (GET) or JSON bodies (POST) a load level cycles through."""
    if label == "/api/search":
        return [{"q": q, "top_k": 5} for q in items]
    if label == "/api/ask":
        return [{"question": q} for q in items]
    return conversations()


def in_process(kb: KnowledgeBase, items: list[str]) -> dict:
    """Each call on a question whose vectors the embedder does not remember (as a citizen's new question)."""
    for q in items[:5]:
        kb.ask(q)  # warm up caches and the thread pool of the math libraries
    runs = items[5:5 + IN_PROCESS_QUESTIONS]

    def anew(call: Callable[[str], object]) -> Callable[[str], object]:
        def timed(question: str) -> object:
            kb.embedder.forget_recent_questions()
            return call(question)
        return timed

    return {
        "questions": len(runs),
        "search_ms": percentiles([timed_ms(anew(kb.search), q) for q in runs]),
        "ask_ms": percentiles([timed_ms(anew(kb.ask), q) for q in runs]),
        "embed_question_ms": percentiles([timed_ms(kb.embedder.encode_queries, [q]) for q in runs]),
    }


def memory_mb(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024), "peak_rss_mb": round(int(fields["VmHWM"].split()[0]) / 1024)}


async def load(bases: list[str], label: str, payloads: list[dict], concurrency: int, offset: int = 0) -> dict:
    """`concurrency` clients, each sending its next request when the last one is answered, until the level's
    request budget or time cap is spent; request n sends payloads[offset + n] (cycling) and goes to
    bases[n % len(bases)] (replicas, as a proxy would spread them)."""
    method, path = ENDPOINTS[label]
    total, deadline = REQUESTS.get(concurrency, 10 * concurrency), time.perf_counter() + LEVEL_SECONDS
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for n in counter:
            if time.perf_counter() > deadline:
                return
            payload, base = payloads[(offset + n) % len(payloads)], bases[n % len(bases)]
            started = time.perf_counter()
            if method == "GET":
                response = await http.get(base + path, params=payload)
            else:
                response = await http.post(base + path, json=payload)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(latencies), "errors": errors,
            "rps": round(len(latencies) / seconds, 1), **percentiles(latencies)}


def over_http(index: Path, backend: str, items: list[str], levels: list[int]) -> dict:
    with tempfile.TemporaryDirectory(prefix="kb-latency-") as tmp:
        env = {"KB_EMBEDDING_BACKEND": backend, "KB_RATE_PER_MINUTE": "1000000", "KB_RATE_BURST": "1000000",
               "KB_QUERY_LOG": str(Path(tmp) / "log.sqlite")}
        with kb_serve(env, ("--index", str(index))) as server:
            results: dict = {"ready_s": round(server.ready_s, 1), "idle_memory": memory_mb(server.process.pid),
                       "levels": {}}
            for label in ENDPOINTS:
                payloads, sent = requests_for(label, items), 0  # each request a question not sent before
                for clients in [1, *levels]:  # the first, a warm-up, is not recorded
                    level = asyncio.run(load([server.base], label, payloads, clients, sent))
                    sent += level["requests"]
                    results["levels"].setdefault(label, []).append(level)
                results["levels"][label] = results["levels"][label][1:]
                print(label, results["levels"][label], flush=True)
            results["memory_after_load"] = memory_mb(server.process.pid)
    return results


def index_size_mb(index: Path) -> dict:
    target = index.resolve()
    files = {p.name: round(p.stat().st_size / 2**20, 2) for p in sorted(target.iterdir()) if p.is_file()}
    return {"total": round(sum(files.values()), 1), "files": files}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--index", help="default: the index bench.ingest built for this backend")
    parser.add_argument("--levels", default="1,8,32")
    args = parser.parse_args()
    index = Path(args.index) if args.index else WORK / "indexes" / f"default-{args.backend}"
    if not (index / "manifest.json").is_file():
        print(f"skipped: no index at {index} (run python -m bench.ingest first)")
        return 0
    items = questions()
    settings = load_settings(index_dir=index, embedding_backend=args.backend)
    kb = KnowledgeBase.open(settings=settings)
    figures = {"backend": args.backend, "chunks": len(kb.store.chunks), "index_size_mb": index_size_mb(index),
               "in_process": in_process(kb, items)}
    del kb
    figures["http"] = over_http(index, args.backend, items, [int(c) for c in args.levels.split(",")])
    write_result(f"latency_{args.backend}", figures)
    print(json.dumps(figures, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
