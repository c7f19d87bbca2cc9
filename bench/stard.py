"""STARD adapter: index STARD's one-article-per-line corpus with the product's own embedding, indexes and search.

    python -m bench.stard build --split train --questions 300 --index /tmp/stard-train/index
    python -m bench.stard eval  --split train --questions 300 --index /tmp/stard-train/index

`--questions N` indexes only the gold articles of N sampled questions plus the other articles of their laws
(capped), which makes a tuning corpus small enough to embed in minutes on two cores; without it the whole
55,956-article corpus is indexed. Skips cleanly when ../shared is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.common import SHARED, peak_rss_mb, write_result
from ingest.build import build_index
from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase
from kb.schema import Chunk, Document
from kb.text.numerals import ARTICLE_RE, parse_chinese_number

STARD = SHARED / "bench" / "stard"


def load_queries(split: str, sample: int | None, seed: int = 13) -> list[dict]:
    queries = [json.loads(l) for l in (STARD / "queries.jsonl").open(encoding="utf-8")]
    queries = [q for q in queries if q["split"] == split]
    if sample:
        queries = random.Random(seed).sample(queries, min(sample, len(queries)))
    return queries


def load_articles(queries: list[dict] | None, cap: int) -> list[dict]:
    articles = [json.loads(l) for l in (STARD / "corpus.jsonl").open(encoding="utf-8")]
    if queries is None:
        return articles
    gold = {g for q in queries for g in q["gold"]}
    laws = {a["law"] for a in articles if a["id"] in gold}
    others = [a for a in articles if a["law"] in laws and a["id"] not in gold]
    random.Random(7).shuffle(others)
    keep = gold | {a["id"] for a in others[: max(0, cap - len(gold))]}
    return [a for a in articles if a["id"] in keep]


def to_documents(articles: list[dict]) -> tuple[list[Document], list[Chunk]]:
    """One Document per law (its articles joined by blank lines), one Chunk per article."""
    by_law: dict[str, list[dict]] = defaultdict(list)
    for article in articles:
        by_law[article["law"]].append(article)
    documents, chunks = [], []
    for law, items in by_law.items():
        doc_id = hashlib.sha256(law.encode()).hexdigest()[:12]
        parts, pos = [], 0
        for seq, item in enumerate(items):
            label_match = ARTICLE_RE.search(item["id"][len(item["law"].removeprefix("中华人民共和国")):])
            number = parse_chinese_number(label_match.group(1)) if label_match else None
            label = label_match.group(0) if label_match else None
            body = f"{label} {item['text']}" if label else item["text"]
            chunks.append(Chunk(item["id"], doc_id, seq, "", label, number, 0, pos, pos + len(body), body))
            parts.append(body)
            pos += len(body) + 2
        text = "\n\n".join(parts)
        documents.append(Document(doc_id, law, "law", items[0]["source"], hashlib.sha256(text.encode()).hexdigest(),
                                  text))
    return documents, chunks


def build(args: argparse.Namespace) -> None:
    """Index the articles with the product's own build (vector cache, embedding, BM25, store); record the cost."""
    queries = load_queries(args.split, args.questions) if args.questions else None
    documents, chunks = to_documents(load_articles(queries, args.cap))
    settings = load_settings(index_dir=Path(args.index), embedding_backend=args.backend)
    started = time.perf_counter()
    reused = build_index(documents, chunks, settings, progress=True)
    seconds = time.perf_counter() - started
    figures = {"documents": len(documents), "chunks": len(chunks), "embedded": len(chunks) - reused,
               "seconds": round(seconds, 1), "peak_rss_mb": round(peak_rss_mb()),
               "embedded_per_s": round((len(chunks) - reused) / seconds, 2)}
    write_result(f"stard_build_{'full' if queries is None else args.split + str(args.questions)}_{args.backend or 'torch'}",
                 figures)
    print(f"indexed {len(chunks)} articles from {len(documents)} laws into {args.index}: {figures}")


CURVE_KS = (1, 2, 3, 5, 10, 20, 30, 50, 100)


def evaluate(kb: KnowledgeBase, queries: list[dict], method: str | None = None) -> dict:
    """Recall@1/5/10/100 and MRR@10 as STARD defines them, plus the recall@k curve for the plots."""
    recalls: dict[int, list[float]] = {k: [] for k in CURVE_KS}
    mrr = []
    for q in queries:
        ids = [h.chunk_id for h in kb.search(q["text"], top_k=100, method=method)]
        gold = set(q["gold"])
        for k in recalls:
            recalls[k].append(len(gold & set(ids[:k])) / len(gold))
        mrr.append(next((1 / r for r, i in enumerate(ids[:10], 1) if i in gold), 0.0))
    out = {f"R@{k}": round(float(np.mean(recalls[k])), 4) for k in (1, 5, 10, 100)}
    out["MRR@10"] = round(float(np.mean(mrr)), 4)
    out["curve"] = {str(k): round(float(np.mean(v)), 4) for k, v in recalls.items()}
    return out


def main() -> int:
    if not STARD.is_dir():
        print(f"skipped: {STARD} not found")
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=["build", "eval"])
    parser.add_argument("--split", default="train")
    parser.add_argument("--questions", type=int, default=None)
    parser.add_argument("--cap", type=int, default=5000)
    parser.add_argument("--index", required=True)
    parser.add_argument("--backend", default=None, help="embedding backend (default: KB_EMBEDDING_BACKEND or torch)")
    parser.add_argument("--methods", default="fused,dense,lexical")
    args = parser.parse_args()
    if args.action == "build":
        build(args)
        return 0
    kb = KnowledgeBase.open(settings=load_settings(index_dir=Path(args.index), embedding_backend=args.backend))
    queries = load_queries(args.split, args.questions)
    for method in args.methods.split(","):
        figures = evaluate(kb, queries, None if method == "fused" else method)
        print(method, {k: v for k, v in figures.items() if k != "curve"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
