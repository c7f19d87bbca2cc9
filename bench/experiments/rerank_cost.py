"""What a cross-encoder reranker would cost per question on this machine, before anyone trains one.

    python -m bench.experiments.rerank_cost [--index DIR] [--questions 20]

A cross-encoder reads the question and each candidate passage together, one transformer pass per pair. The
one we could train is initialised from the model we already build (multilingual-e5-small, 12 layers), so its
cost is that of the product's fastest encoder, the int8 ONNX graph, run over (question, passage) pairs. Here
real training questions (never a measurement set) take the product's first stage's top k passages, and the
pairs are scored as a reranker would score them: one pair per run (what the int8 encoder does fastest) and all
k in one padded batch, cut to 128 or 256 tokens. A cross-encoder of fewer layers costs proportionally less.

The budget it is compared with is issue 10's: /api/ask p50 ≤ 60 ms on two cores, minus what the search
already takes (bench/results/latency_*.json, in-process p50).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import EXPERIMENT_RESULTS, read_result, write_result
from bench.train_ranker import LOCAL_SETS, experiment_parser, parse_experiment
from kb.config import load_settings
from kb.embedding.model.onnx_int8 import ONNX_FILE, build_onnx_int8, onnx_dir_for
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase

DEPTHS = (5, 10, 20)
LENGTHS = (128, 256)
ASK_P50_BUDGET_MS = 60.0


def main() -> int:
    parser = experiment_parser(__doc__)
    parser.add_argument("--questions", type=int, default=20)
    args = parse_experiment(parser)
    if args is None:
        return 0
    import onnxruntime as ort
    from tokenizers import Tokenizer

    settings = load_settings(index_dir=Path(args.index))
    kb = KnowledgeBase.open(settings=settings)
    model_dir = settings.model_dir
    onnx_dir = build_onnx_int8(model_dir, onnx_dir_for(model_dir, kb.embedder.fingerprint))
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.torch_threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))

    questions = [q.q for q in load_questions(LOCAL_SETS[0]) if q.answerable][: args.questions]
    candidates = [(q, [h.text for h in kb.search(q, top_k=max(DEPTHS))]) for q in questions]

    def run(ids: np.ndarray, mask: np.ndarray) -> None:
        session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})

    def pairs(question: str, passages: list[str], length: int) -> list[list[int]]:
        tokenizer.enable_truncation(length, strategy="only_second")
        return [e.ids for e in tokenizer.encode_batch([(f"query: {question}", f"passage: {p}") for p in passages])]

    def one_by_one(encoded: list[list[int]]) -> None:
        for ids in encoded:
            row = np.asarray([ids], dtype=np.int64)
            run(row, np.ones_like(row))

    def batched(encoded: list[list[int]]) -> None:
        width = max(len(ids) for ids in encoded)
        rows = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros_like(rows)
        for n, ids in enumerate(encoded):
            rows[n, :len(ids)], mask[n, :len(ids)] = ids, 1
        run(rows, mask)

    one_by_one(pairs(*candidates[0], 128))  # warm-up
    rows = []
    for length in LENGTHS:
        for depth in DEPTHS:
            for mode, score in (("one pair per run", one_by_one), ("one padded batch", batched)):
                samples = []
                for question, passages in candidates:
                    encoded = pairs(question, passages[:depth], length)
                    started = time.perf_counter()
                    score(encoded)
                    samples.append((time.perf_counter() - started) * 1000)
                rows.append({"max_tokens": length, "top_k": depth, "mode": mode,
                             "p50_ms": round(statistics.median(samples), 1), "max_ms": round(max(samples), 1)})
                print(rows[-1], flush=True)
    source_name = next((n for n in ("latency_onnx-int8", "latency_torch") if read_result(n)), None)
    latency = read_result(source_name) if source_name else {}
    search_p50 = latency.get("in_process", {}).get("search_ms", {}).get("p50")
    figures = {
        "model": "the product's int8 ONNX graph of multilingual-e5-small (12 layers), as a cross-encoder would run",
        "questions": len(candidates), "threads": settings.torch_threads, "rows": rows,
        "budget": {"ask_p50_ms": ASK_P50_BUDGET_MS, "search_p50_ms": search_p50,
                   "from": f"bench/results/{source_name}.json" if source_name else None},
        "script": "python -m bench.experiments.rerank_cost",
    }
    write_result("rerank_cost", figures, EXPERIMENT_RESULTS)
    print(json.dumps(figures["budget"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
