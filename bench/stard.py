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
from collections import defaultdict
from pathlib import Path

import numpy as np

from ingest.chunk import indexing_text
from kb.config import load_settings
from kb.embed import Embedder
from kb.knowledge_base import KnowledgeBase
from kb.lexical import LexicalIndex
from kb.numerals import ARTICLE_RE, parse_chinese_number
from kb.schema import Chunk, Document
from kb.store import IndexContents, write_index

STARD = Path(__file__).resolve().parents[1].parent / "shared" / "bench" / "stard"


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
    queries = load_queries(args.split, args.questions) if args.questions else None
    documents, chunks = to_documents(load_articles(queries, args.cap))
    settings = load_settings(index_dir=Path(args.index))
    embedder = Embedder(settings)
    by_id = {d.doc_id: d for d in documents}
    texts = [indexing_text(by_id[c.doc_id], c) for c in chunks]
    vectors = embedder.encode_passages(texts, show_progress=True)
    write_index(IndexContents(documents, chunks, vectors, LexicalIndex.build(texts), embedder.model_id,
                              embedder.fingerprint), settings.index_dir)
    print(f"indexed {len(chunks)} articles from {len(documents)} laws into {args.index}")


def evaluate(kb: KnowledgeBase, queries: list[dict], method: str | None = None, depth: int = 100) -> dict:
    recalls = {k: [] for k in (1, 5, 10, 100)}
    mrr = []
    for q in queries:
        ids = [h.chunk_id for h in kb.search(q["text"], top_k=min(depth, 100), method=method)]
        gold = set(q["gold"])
        for k in recalls:
            recalls[k].append(len(gold & set(ids[:k])) / len(gold))
        mrr.append(next((1 / r for r, i in enumerate(ids[:10], 1) if i in gold), 0.0))
    out = {f"R@{k}": round(float(np.mean(v)), 4) for k, v in recalls.items()}
    out["MRR@10"] = round(float(np.mean(mrr)), 4)
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
    parser.add_argument("--methods", default="fused,dense,lexical")
    args = parser.parse_args()
    if args.action == "build":
        build(args)
        return 0
    kb = KnowledgeBase.open(args.index)
    queries = load_queries(args.split, args.questions)
    for method in args.methods.split(","):
        print(method, evaluate(kb, queries, None if method == "fused" else method))
    return 0


if __name__ == "__main__":
    sys.exit(main())
