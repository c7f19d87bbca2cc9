"""What the question bank teaches the question encoder: real questions against questions written as villagers talk.

    python -m bench.encoder_pack --index index --bank --out var/bench/encoder_pack_bank
    python -m bench.experiments.bank_tuning [--share 1.0 | --share all] [--epochs 3] [--lr 1e-3]

The pack holds the training questions of bench/train_encoder.py plus the bank's shipped questions (fitted) and the
questions of the bank's held-out articles (never fitted). One run fits the question LoRA as bench.train_encoder
does, with bank questions sampled each epoch at `--share` of the real questions' number (`all`: the whole bank
every epoch), and measures after every epoch, dense retrieval only, on the fixed 20 % validation part of the real
training questions (STARD train over the full STARD corpus, stard_local_train and the team's questions over
corpus/) and on the bank's held-out articles. The model as built and the shipped tuning (learnt without the bank)
are measured on the same questions. Each run adds its variant to results/bank_tuning.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from safetensors.numpy import load_file

from bench.common import PROJECT_ROOT
from bench.train_encoder import TUNED_LAYERS, Pack, add_lora, metrics, train
from kb.embedding.model.tuning import QUERY_LORA

RESULT = Path(__file__).parent / "results" / "bank_tuning.json"


def shipped_model(pack: Pack) -> torch.nn.Module:
    """The model with the shipped question tuning (its B matrices are stored already scaled)."""
    model = pack.base_model()
    tensors = load_file(str(QUERY_LORA))
    for name, module in add_lora(model):
        module.lora_a.data = torch.from_numpy(tensors[f"{name}.lora_a"])
        module.lora_b.data = torch.from_numpy(tensors[f"{name}.lora_b"]) / module.scale
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", default=str(PROJECT_ROOT / "var" / "bench" / "encoder_pack_bank"))
    parser.add_argument("--share", default="1.0", help="bank questions per epoch per real question, or `all`")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--layers", type=int, default=TUNED_LAYERS, help="how many top layers get LoRA updates")
    args = parser.parse_args()
    if not (Path(args.pack) / "meta.json").is_file():
        print(f"skipped: no bank pack in {args.pack} (python -m bench.encoder_pack --bank --out {args.pack})")
        return 0
    torch.set_num_threads(os.cpu_count() or 2)
    pack = Pack(Path(args.pack))
    questions = [{**q, "index": i} for i, q in enumerate(pack.questions)]
    if not any(q["source"] == "bank" for q in questions):
        raise SystemExit(f"{args.pack} holds no bank questions: build it with --bank")
    fitting = [q for q in questions if not q["validation"]]
    held = [q for q in questions if q["validation"]]
    result = json.loads(RESULT.read_text(encoding="utf-8")) if RESULT.is_file() else {}
    if "as built" not in result:  # the baselines of the first run (the shipped tuning then had no bank)
        result["as built"] = metrics(pack.base_model(), pack, held)
        result["shipped tuning (no bank)"] = metrics(shipped_model(pack), pack, held)
    share = None if args.share == "all" else float(args.share)
    started = time.perf_counter()
    history = train(pack, fitting, args.lr, args.epochs, evaluate_on=held, bank_share=share,
                    tuned_layers=args.layers)[1]
    deeper = "" if args.layers == TUNED_LAYERS else f", top {args.layers} layers"
    result[f"bank share {args.share}, lr {args.lr}{deeper}"] = {
        "epochs": history, "fitted": len(fitting), "seconds": round(time.perf_counter() - started, 1)}
    result["script"] = "python -m bench.encoder_pack --index index --bank --out var/bench/encoder_pack_bank && " \
                       "python -m bench.experiments.bank_tuning --share S --epochs N"
    RESULT.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for row in history:
        print(row["epoch"], {s: (m["hit@1"], m["mrr@10"]) for s, m in row.items() if isinstance(m, dict)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
