"""Write the training pack for bench/train_encoder.py: everything it needs, in plain arrays.

    python -m bench.encoder_pack [--stard-index var/bench/stard/index] [--index var/bench/indexes/default-torch]

The question encoder is trained on training questions only, each with the passages that answer it, against
every other passage of its pool (the passages' vectors are the indexes' own and stay as they are):
* STARD's train split over the full STARD corpus (pool "stard", source "stard");
* ../shared/eval/stard_local_train.jsonl over corpus/ (pool "local", source "stard_local") and
  bench/data/train_local.jsonl, the team's 信访 and report questions (pool "local", source "team");
* with --bank, the question bank's shipped questions (corpus/*.questions.jsonl, as the index's handles: pool
  "local", source "bank"), always fitted; and the bank's held-out articles' questions (source "bank_heldout"),
  never fitted and never chosen on — measured beside the real questions (bench/train_encoder.py chooses on those).
Never the measurement sets (dev.jsonl, stard_local_dev.jsonl, STARD dev).

Questions are tokenised here exactly as the product embeds them (prompt, legal-term expansion, 512 tokens). The
model is kept as its 4-bit blocks, byte for byte as the registry package holds them, with only the vocabulary
rows the questions use, so the trainer needs neither FAISS, jieba nor the tokenizer (and the pack can travel to
a lent GPU machine).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import SHARED, WORK
from bench.crossfit import fold
from bench.question_bank import held_out_bank
from bench.stard import load_queries
from bench.train_ranker import LOCAL_SETS, local_items
from kb.config import load_settings
from kb.embedding.model.build import WEIGHTS, extract_member, fetch_artefact
from kb.embedding.model.q4file import BLOCK, DTYPE_Q4_0, read_q4_raw
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase
from kb.schema import Chunk
from kb.search.expand import expand_query
from kb.stores.handles import PassageKey, passage_key

PACK = WORK / "encoder_pack"
VALIDATION_SHARE = 0.2
MAX_TOKENS = 512


def validation(question: str) -> bool:
    """A fixed 20 % of the training questions, by text: the same question is held out in every pool."""
    digest = hashlib.sha256(("validation:" + question).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 < VALIDATION_SHARE


def answering_rows(local: KnowledgeBase, answers: Callable[[Chunk], bool]) -> list[int]:
    """The rows of corpus/'s passages that answer a question."""
    return [r for r, chunk in enumerate(local.store.chunks) if answers(chunk)]


def bank_questions(local: KnowledgeBase) -> list[dict]:
    """The handles of the local index (the bank's shipped questions) with the rows of their passages."""
    handles = local.store.handles
    if handles is None:
        raise SystemExit("--bank: the local index has no questions (ingest corpus/ with its sidecars)")
    rows: dict[PassageKey, list[int]] = {}
    for r, chunk in enumerate(local.store.chunks):
        rows.setdefault(passage_key(chunk), []).append(r)
    return [{"text": h.question, "pool": "local", "source": "bank", "gold": rows[h.key]}
            for h in handles.handles if h.key in rows]


def training_questions(stard: KnowledgeBase, local: KnowledgeBase, bank: bool = False) -> list[dict]:
    """Every training question with its pool, source and answering rows."""
    questions: list[dict] = []
    row_of = {c.chunk_id: i for i, c in enumerate(stard.store.chunks)}
    for q in load_queries("train", None):
        gold = sorted({row_of[g] for g in q["gold"] if g in row_of})
        if gold:
            questions.append({"text": q["text"], "pool": "stard", "source": "stard", "gold": gold})
    ranker_questions = set()
    for path, source in zip(LOCAL_SETS, ("stard_local", "team")):
        items = local_items(local, load_questions(path))
        ranker_questions |= {text for text, _ in items}
        for text, answers in items:
            if gold := answering_rows(local, answers):
                questions.append({"text": text, "pool": "local", "source": source, "gold": gold})
    if bank:
        real = {q["text"] for q in questions}
        questions += [q for q in bank_questions(local) if q["text"] not in real]
        for text, answers in local_items(local, held_out_bank()):
            if gold := answering_rows(local, answers):
                questions.append({"text": text, "pool": "local", "source": "bank_heldout", "gold": gold})
    for q in questions:
        q["validation"] = q["source"] == "bank_heldout" or (q["source"] != "bank" and validation(q["text"]))
        # Cross-fitting for bench.train_ranker: which fold of its questions this one is (-1: not one of them).
        q["ranker_fold"] = fold(q["text"]) if q["text"] in ranker_questions else -1
    return questions


def model_slice(settings, used: np.ndarray) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """The registry model's header, tensor layout and raw tensors, word embeddings cut to the `used` rows."""
    archive = fetch_artefact(WEIGHTS, settings.cache_dir / "downloads", settings.model_artefacts_dir)
    header, raw = read_q4_raw(extract_member(archive, WEIGHTS))
    tensors: dict[str, np.ndarray] = {"vocabulary": used.astype(np.int64)}
    layout = {}
    for name, tensor in raw.items():
        data = np.frombuffer(tensor.raw, dtype=np.uint8)
        count = tensor.count
        if name == "emb.word":  # each row is a whole number of 4-bit blocks
            if tensor.dtype != DTYPE_Q4_0:
                raise SystemExit("expected 4-bit word embeddings")
            row_bytes = header.hidden // BLOCK * (2 + BLOCK // 2)
            data = data.reshape(header.vocab, row_bytes)[used].reshape(-1)
            count = len(used) * header.hidden
        layout[name] = {"dtype": tensor.dtype, "count": count}
        tensors[name] = np.ascontiguousarray(data)
    return {**header.__dict__, "vocab": len(used)}, layout, tensors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stard-index", default=str(WORK / "stard" / "index"))
    parser.add_argument("--index", default=str(WORK / "indexes" / "default-torch"), help="index of corpus/")
    parser.add_argument("--out", default=str(PACK))
    parser.add_argument("--bank", action="store_true", help="add the question bank's shipped questions (fitted only)")
    args = parser.parse_args()
    if not (SHARED / "bench" / "stard").is_dir() or not all(p.is_file() for p in LOCAL_SETS):
        print("skipped: ../shared (STARD, stard_local_train) missing")
        return 0
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(index_dir=Path(args.index), embedding_backend="torch")
    local = KnowledgeBase.open(settings=settings)
    stard = KnowledgeBase.open(settings=load_settings(index_dir=Path(args.stard_index), embedding_backend="torch"),
                               embedder=local.embedder)
    pools = {"stard": stard, "local": local}
    questions = training_questions(stard, local, args.bank)

    model_dir = settings.model_dir
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    prompts = json.loads((model_dir / "config_sentence_transformers.json").read_text(encoding="utf-8"))["prompts"]
    # As sentence-transformers tokenises: prompt + text, stripped, truncated to the model's length.
    sequences = [(prompts["query"] + expand_query(q["text"])).strip() for q in questions]
    encoded = [np.array(e.ids) for e in tokenizer.encode_batch(sequences)]
    used = np.unique(np.concatenate(encoded))
    compact = np.full(int(used.max()) + 1, -1, dtype=np.int64)
    compact[used] = np.arange(len(used))
    save_file({"questions.ids": compact[np.concatenate(encoded)].astype(np.int32),
               "questions.offsets": np.cumsum([0] + [len(i) for i in encoded]).astype(np.int64),
               **{f"{name}.vectors": np.ascontiguousarray(kb.store.vectors) for name, kb in pools.items()}},
              str(out / "data.safetensors"))
    header, layout, tensors = model_slice(settings, used)
    save_file(tensors, str(out / "model.safetensors"))
    meta = {"header": header, "layout": layout, "questions": questions,
            "pools": {name: len(kb.store.chunks) for name, kb in pools.items()},
            "base_fingerprint": local.embedder.fingerprint, "built_by": "python -m bench.encoder_pack"}
    (out / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    counts = {s: sum(q["source"] == s for q in questions)
              for s in ("stard", "stard_local", "team", "bank", "bank_heldout")}
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"pack in {out}: {len(questions)} questions {counts}, vocabulary {len(used)}, {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
