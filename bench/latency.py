"""Search and answer latency, in-process and over HTTP under load; memory, index size, time to ready.

    python -m bench.latency [--index DIR] [--backend torch|onnx-int8] [--levels 1,8,32]

In-process: p50/p95/p99 of KnowledgeBase.search and .ask over the question set, and how much of it is
embedding the question. HTTP: a real `kb serve` on 127.0.0.1 (rate limit lifted), time from process start to
/readyz, then a bounded closed-loop load generator (N concurrent clients, a fixed number of requests and a
time cap per level) against /api/search, /api/ask, and /api/ask with the question before it in `history` (the
team's follow-up check conversations, bench/data/followup_check.jsonl: a follow-up reads the question six ways);
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
from pathlib import Path

import httpx

from bench.common import PROJECT_ROOT, SHARED, WORK, percentiles, timed_ms, write_result
from bench.services import kb_serve
from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase

FALLBACK_QUESTIONS = ["信访事项多长时间内办结？", "邻居家的树挡住了我家采光怎么办", "申请行政复议的期限是多少天",
                      "法律援助可以向哪里申请", "雁石坪镇开展了哪些普法活动", "人民调解委员会由哪些人组成",
                      "政府信息公开申请应当包括哪些内容", "诉讼时效期间是多长时间"]
#: Requests per level (bounded) and the most seconds a level may run.
REQUESTS = {1: 120, 8: 240, 32: 320}
LEVEL_SECONDS = 90.0


CONVERSATIONS = PROJECT_ROOT / "bench" / "data" / "followup_check.jsonl"
#: What each load level sends: label → (method, path).
ENDPOINTS = {"/api/search": ("GET", "/api/search"), "/api/ask": ("POST", "/api/ask"),
             "/api/ask with history": ("POST", "/api/ask")}


def questions() -> list[str]:
    dev = SHARED / "eval" / "dev.jsonl"
    if not dev.is_file():
        return FALLBACK_QUESTIONS
    return [json.loads(line)["q"] for line in dev.open(encoding="utf-8") if line.strip()]


def requests_for(label: str, items: list[str]) -> list[dict]:
    """The query parameters (GET) or JSON bodies (POST) a load level cycles through."""
    if label == "/api/search":
        return [{"q": q, "top_k": 5} for q in items]
    if label == "/api/ask":
        return [{"question": q} for q in items]
    rows = [json.loads(line) for line in CONVERSATIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"question": r["q"], "history": r["history"]} for r in rows]


def in_process(kb: KnowledgeBase, items: list[str], rounds: int = 3) -> dict:
    for q in items[:5]:
        kb.ask(q)  # warm up caches and the thread pool of the math libraries
    runs = [q for _ in range(rounds) for q in items]
    return {
        "questions": len(items), "rounds": rounds,
        "search_ms": percentiles([timed_ms(kb.search, q) for q in runs]),
        "ask_ms": percentiles([timed_ms(kb.ask, q) for q in runs]),
        "embed_question_ms": percentiles([timed_ms(kb.embedder.encode_queries, [q]) for q in runs]),
    }


def memory_mb(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024), "peak_rss_mb": round(int(fields["VmHWM"].split()[0]) / 1024)}


async def load(bases: list[str], label: str, payloads: list[dict], concurrency: int) -> dict:
    """`concurrency` clients, each sending its next request when the last one is answered, until the level's
    request budget or time cap is spent; request n goes to bases[n % len(bases)] (replicas, as a proxy would
    spread them)."""
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
            payload, base = payloads[n % len(payloads)], bases[n % len(bases)]
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
                payloads = requests_for(label, items)
                asyncio.run(load([server.base], label, payloads, 1))  # warm-up, not recorded
                results["levels"][label] = [asyncio.run(load([server.base], label, payloads, c)) for c in levels]
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
