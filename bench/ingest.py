"""Ingest cost: seconds, chunks per second and peak memory of `kb ingest`, as a user runs it.

    python -m bench.ingest [--lawref-sample 600]

- The default corpus, once per embedding backend, each a fresh `kb ingest` process with an empty vector
  cache and a warm model (the "first run" of `make run` once the model is built); then a re-ingest after one
  document is added (the vector cache and the live index make it embed only the new chunks).
- ../shared/lawref (1,510 laws): read + parse + chunk + BM25 of all of it, timed; embedding measured on a
  random sample of its chunks per backend and projected to the whole (embedding all ≈60k chunks takes about
  an hour on two cores; `--lawref-full` does it for real with the int8 backend).
The STARD corpus's full ingest is measured by `python -m bench.stard build` (bench/results/stard_build_full.json).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import SHARED, WORK, peak_rss_mb, read_result, write_result
from ingest.build import IngestReport, find_files, parse_files
from ingest.chunk import indexing_text
from kb.config import PROJECT_ROOT, load_settings
from kb.embedding.embedder import Embedder
from kb.stores.index_dir import remove_index
from kb.text.lexical import LexicalIndex

KB = [sys.executable, "-m", "cli.main"]
REPORT_LINE = re.compile(r"(\d+) 个文档, (\d+) 个片段（(\d+) 个沿用已有向量）.*用时 ([\d.]+) 秒")
NEW_DOCUMENT = """# 雁石坪镇便民服务事项清单

<!-- INFO END -->

第一条 群众办理户籍、社保、医保等事项，可以到镇便民服务中心一窗受理。

第二条 便民服务中心工作日上午八点半至十二点、下午两点半至六点对外办公。

第三条 对行动不便的老年人、残疾人，村（社区）代办员可以上门代办。
"""


def run_ingest(corpus: Path, index: Path, env: dict[str, str]) -> dict:
    """One `kb ingest` process: its own report (documents, chunks, reused, seconds), wall time, peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen([*KB, "ingest", "-q", "--index", str(index), str(corpus)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    out, err = process.stdout.read(), process.stderr.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"kb ingest failed: {err[-2000:]}")
    found = REPORT_LINE.search(out)
    documents, chunks, reused, seconds = int(found[1]), int(found[2]), int(found[3]), float(found[4])
    return {"documents": documents, "chunks": chunks, "embedded": chunks - reused, "ingest_s": seconds,
            "process_s": round(time.perf_counter() - started, 1), "chunks_per_s": round(chunks / seconds, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def default_corpus(backends: list[str]) -> dict:
    settings = load_settings()
    results = {}
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="kb-ingest-bench-") as tmp:
            corpus = Path(tmp) / "corpus"
            shutil.copytree(settings.corpus_dir, corpus)
            index = WORK / "indexes" / f"default-{backend}"
            remove_index(index)  # a first ingest: nothing to reuse
            env = {**os.environ, "KB_EMBEDDING_BACKEND": backend, "KB_VECTOR_CACHE": str(Path(tmp) / "vectors")}
            first = run_ingest(corpus, index, env)
            (corpus / "便民服务事项清单.md").write_text(NEW_DOCUMENT, encoding="utf-8")
            again = run_ingest(corpus, index, env)
            (corpus / "便民服务事项清单.md").unlink()
            results[backend] = {"first": first, "after_adding_one_document": again}
            run_ingest(corpus, index, env)  # leave the index of the real corpus for bench.latency / bench.quality
            print(backend, results[backend], flush=True)
    return results


def lawref(sample: int, backends: list[str]) -> dict | None:
    root = SHARED / "lawref"
    if not root.is_dir():
        return None
    settings = load_settings()
    started = time.perf_counter()
    report = IngestReport(settings.index_dir)
    documents, chunks, _ = parse_files(find_files([root]), settings, report, False)
    by_id = {d.doc_id: d for d in documents}
    texts = [indexing_text(by_id[c.doc_id], c) for c in chunks]
    parse_s = time.perf_counter() - started
    started = time.perf_counter()
    LexicalIndex.build(texts)
    bm25_s = time.perf_counter() - started
    picked = random.Random(3).sample(texts, min(sample, len(texts)))
    embedding = {}
    for backend in backends:
        embedder = Embedder(load_settings(embedding_backend=backend))
        started = time.perf_counter()
        embedder.encode_passages(picked)
        rate = len(picked) / (time.perf_counter() - started)
        embedding[backend] = {"sample": len(picked), "chunks_per_s": round(rate, 1),
                              "projected_ingest_min": round((len(texts) / rate + parse_s + bm25_s) / 60, 1)}
    return {"documents": len(documents), "chunks": len(chunks), "skipped": len(report.skipped),
            "characters": sum(len(d.text) for d in documents), "parse_chunk_s": round(parse_s, 1),
            "bm25_build_s": round(bm25_s, 1), "embedding": embedding, "peak_rss_mb_in_process": round(peak_rss_mb())}


def lawref_full(backend: str) -> dict | None:
    root = SHARED / "lawref"
    if not root.is_dir():
        return None
    with tempfile.TemporaryDirectory(prefix="kb-lawref-") as tmp:
        env = {**os.environ, "KB_EMBEDDING_BACKEND": backend, "KB_VECTOR_CACHE": str(Path(tmp) / "vectors")}
        return {backend: run_ingest(root, WORK / "indexes" / f"lawref-{backend}", env)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="torch,onnx-int8")
    parser.add_argument("--lawref-sample", type=int, default=600)
    parser.add_argument("--lawref-full", action="store_true", help="really ingest all of lawref (about an hour)")
    args = parser.parse_args()
    backends = args.backends.split(",")
    earlier = read_result("ingest") or {}
    figures = {"default_corpus": {**earlier.get("default_corpus", {}), **default_corpus(backends)},
               "lawref": lawref(args.lawref_sample, backends)}
    if earlier.get("lawref") and figures["lawref"]:
        figures["lawref"]["embedding"] = {**earlier["lawref"]["embedding"], **figures["lawref"]["embedding"]}
    if args.lawref_full:
        figures["lawref_full"] = lawref_full("onnx-int8")
    write_result("ingest", figures)
    print(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
