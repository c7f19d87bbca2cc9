"""Fine-tune the question side of the embedding model: low-rank (LoRA) updates of its top layers.

    python -m bench.encoder_pack      # training questions, their answering rows, the indexes' passage vectors
    python -m bench.train_encoder     # ~22 min on two CPU cores; writes kb/embedding/model/tuned/ with --write

Passages keep the model's own vectors (indexes, the vector cache and every ingest stay as they are); only the
encoding of questions changes, so the product embeds a question with the tuned layers and everything else
with the model as built. Each training question learns to put the passages that answer it first among all
passages of its pool (the 55,956 STARD articles, or corpus/): the softmax over the pool at temperature TAU,
as for the linear adapter this replaces, but with the top TUNED_LAYERS (or --layers) transformer layers adapted
(LoRA of rank RANK on their query, key, value, attention-output and feed-forward projections) instead of one
linear map.

The learning rate and the number of epochs are chosen on a fixed 20 % validation part of the training
questions (mean over sources of dense MRR@10); then the model is refitted on all of them. Five more are fitted
without one fold each of bench.train_ranker's questions (bench/crossfit.py), so that the ranker learns from cosines
of questions the encoder has not seen (cross-fitting). A run stopped part way (the six fits take hours on two
cores at 8 layers) resumes where it stopped: a fit already in --out with the same settings is kept. Needs only
torch, transformers, numpy and safetensors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from bench.common import PROJECT_ROOT, write_result
from bench.crossfit import FOLDS
from kb.embedding.model.build import bert_config, bert_state_dict
from kb.embedding.model.q4file import DTYPE_Q4_0, Q4Header, dequantize_q4_0
from kb.embedding.model.tuning import LORA_TARGETS, QUERY_LORA, lora_meta, lora_name

SEED = 1234
TAU = 0.02
TUNED_LAYERS = 4
RANK = 16
ALPHA = 32
BATCH_QUESTIONS = 64
#: The team's 信访 and report questions are a tenth of the others but as important: each is seen this often per epoch.
TEAM_REPEAT = 3
#: Bank questions per epoch (a pack built with --bank), as a share of the real ones: each epoch draws its own
#: sample, so real questions are not drowned (bench/experiments/bank_tuning.py measured shares).
BANK_SHARE = 1.0
LR_GRID = (3e-4, 1e-3)
#: Sources of real questions, over which the validation mean is taken (the choice is made on them alone; the
#: bank's held-out articles are measured beside them, never chosen on).
REAL_SOURCES = ("stard", "stard_local", "team")
MAX_EPOCHS = 5


class LoraLinear(torch.nn.Module):
    """y = base(x) + scale · B(A(x)); the base is frozen, B starts at zero so training starts from the model."""

    def __init__(self, base: torch.nn.Linear, rank: int, alpha: int) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = torch.nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale


class Pack:
    """The training pack written by bench.encoder_pack."""

    def __init__(self, folder: Path) -> None:
        self.meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self.header = Q4Header(**self.meta["header"])
        data = load_file(str(folder / "data.safetensors"))
        self.raw = load_file(str(folder / "model.safetensors"))
        self.questions = self.meta["questions"]
        ids, offsets = data["questions.ids"], data["questions.offsets"]
        self.sequences = [ids[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
        self.pools = {name: torch.from_numpy(data[f"{name}.vectors"]) for name in self.meta["pools"]}

    def base_model(self) -> torch.nn.Module:
        from transformers import BertConfig, BertModel

        values = {}
        for name, spec in self.meta["layout"].items():
            data = self.raw[name]
            values[name] = (dequantize_q4_0(data.tobytes(), spec["count"]) if spec["dtype"] == DTYPE_Q4_0
                            else data.view("<f4").astype(np.float32))
        state = bert_state_dict(self.header, values)
        model = BertModel(BertConfig(**bert_config(self.header)), add_pooling_layer=True)
        missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
        if unexpected or [m for m in missing if not m.endswith("_ids")]:  # buffers, not weights
            raise SystemExit(f"state dict does not fit: missing {missing}, unexpected {unexpected}")
        return model.eval()


def add_lora(model: torch.nn.Module, tuned_layers: int = TUNED_LAYERS) -> list[tuple[str, LoraLinear]]:
    """Freeze the model; wrap the projections of its top `tuned_layers` layers."""
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped = []
    layers = model.encoder.layer
    for i in range(len(layers) - tuned_layers, len(layers)):
        for target in LORA_TARGETS:
            parent_path, attr = target.rsplit(".", 1)
            parent = layers[i].get_submodule(parent_path)
            module = LoraLinear(getattr(parent, attr), RANK, ALPHA)
            setattr(parent, attr, module)
            wrapped.append((lora_name(i, target), module))
    return wrapped


def encode(model: torch.nn.Module, sequences: list[np.ndarray], grad: bool = False, budget: int = 16384) -> torch.Tensor:
    """Mean-pooled, L2-normalised vectors, as the product's sentence-transformers pipeline computes them."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    parts, start = [], 0
    while start < len(order):
        end = start + 1  # sorted by length: a batch's last sequence is its longest
        while end < len(order) and (end + 1 - start) * len(sequences[order[end]]) <= budget:
            end += 1
        rows = order[start:end]
        width = len(sequences[rows[-1]])
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for n, i in enumerate(rows):
            ids[n, :len(sequences[i])] = torch.from_numpy(sequences[i].astype(np.int64))
            mask[n, :len(sequences[i])] = 1
        with torch.set_grad_enabled(grad):
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            parts.append(torch.nn.functional.normalize(pooled, dim=-1))
        start = end
    return torch.cat(parts)[torch.argsort(torch.tensor(order))]


def metrics(model: torch.nn.Module, pack: Pack, questions: list[dict]) -> dict:
    """Dense retrieval over each whole pool: Hit@1, R@10 and MRR@10 per source, and their mean over the sources of
    real questions."""
    vectors = encode(model, [pack.sequences[q["index"]] for q in questions])
    by_source: dict[str, list[tuple[float, float, float]]] = {}
    for q, vector in zip(questions, vectors):
        top = torch.topk(pack.pools[q["pool"]] @ vector, 10).indices.tolist()
        gold = set(q["gold"])
        rank = next((r for r, i in enumerate(top, 1) if i in gold), None)
        by_source.setdefault(q["source"], []).append(
            (float(rank == 1), len(gold & set(top)) / len(gold), 1 / rank if rank else 0.0))
    out = {s: {"n": len(v), "hit@1": round(float(np.mean([x[0] for x in v])), 4),
               "R@10": round(float(np.mean([x[1] for x in v])), 4),
               "mrr@10": round(float(np.mean([x[2] for x in v])), 4)} for s, v in sorted(by_source.items())}
    real = [m for s, m in out.items() if s in REAL_SOURCES]
    out["mean"] = {k: round(float(np.mean([m[k] for m in real])), 4) for k in ("hit@1", "R@10", "mrr@10")}
    return out


def train(pack: Pack, questions: list[dict], lr: float, epochs: int, evaluate_on: list[dict] | None = None,
          bank_share: float | None = BANK_SHARE,
          tuned_layers: int = TUNED_LAYERS) -> tuple[list[tuple[str, LoraLinear]], list[dict]]:
    """Fit LoRA matrices on `questions`; with `evaluate_on`, the validation figures after every epoch. Bank
    questions are sampled each epoch, `bank_share` of the real questions' number (None: all of them, every epoch)."""
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    model = pack.base_model()
    lora = add_lora(model, tuned_layers)
    optimiser = torch.optim.AdamW([p for _, m in lora for p in (m.lora_a, m.lora_b)], lr=lr, weight_decay=0.0)
    sampled = [q for q in questions if q["source"] == "bank"] if bank_share is not None else []  # None: all, always
    every_epoch = [q for q in questions if q["source"] != "bank" or bank_share is None
                   for _ in range(TEAM_REPEAT if q["source"] == "team" else 1)]
    schedule, history = list(every_epoch), []
    for epoch in range(1, epochs + 1):
        model.train()
        if sampled and bank_share is not None:  # the bank is ten times the real questions: a fresh sample each epoch
            schedule = every_epoch + rng.sample(sampled, min(len(sampled), round(bank_share * len(every_epoch))))
        rng.shuffle(schedule)
        for start in range(0, len(schedule), BATCH_QUESTIONS):
            batch = schedule[start:start + BATCH_QUESTIONS]
            vectors = encode(model, [pack.sequences[q["index"]] for q in batch], grad=True)
            losses = []
            for pool, passages in pack.pools.items():
                rows = [n for n, q in enumerate(batch) if q["pool"] == pool]
                if rows:
                    log_p = torch.log_softmax(vectors[rows] @ passages.T / TAU, dim=-1)
                    losses += [-torch.logsumexp(log_p[k, batch[n]["gold"]], dim=0) for k, n in enumerate(rows)]
            loss = torch.stack(losses).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        if evaluate_on:
            figures = metrics(model, pack, evaluate_on)
            history.append({"lr": lr, "epoch": epoch, "loss": round(loss.item(), 4), **figures})
            print(f"lr {lr} epoch {epoch} loss {loss.item():.3f} {figures['mean']}", flush=True)
    return lora, history


def lora_tensors(lora: list[tuple[str, LoraLinear]]) -> dict[str, np.ndarray]:
    """The update of each wrapped projection as two matrices whose product is added to its weight."""
    out = {}
    for name, module in lora:
        out[f"{name}.lora_a"] = module.lora_a.detach().numpy().astype(np.float32)
        out[f"{name}.lora_b"] = (module.lora_b.detach() * module.scale).numpy().astype(np.float32)
    return out


def already_trained(path: Path, meta: dict) -> bool:
    """Whether `path` holds a tuning fitted with exactly these settings: on two cores the six fits take hours, so
    a run that was stopped part way resumes after its last finished fit instead of starting over."""
    return path.is_file() and lora_meta(path) == meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", default=str(PROJECT_ROOT / "var" / "bench" / "encoder_pack"))
    parser.add_argument("--out", default=str(PROJECT_ROOT / "var" / "bench" / "encoder_tuning"),
                        help="where the cross-fitted fold tunings go (bench.train_ranker reads them)")
    parser.add_argument("--write", action="store_true", help="ship the refitted tuning in kb/embedding/model/tuned/")
    parser.add_argument("--smoke", action="store_true", help="a few local questions, one epoch: checks the plumbing")
    parser.add_argument("--layers", type=int, default=TUNED_LAYERS,
                        help="how many of the model's top layers the tuning updates (bench.experiments.bank_tuning "
                             "compares depths)")
    parser.add_argument("--fit", nargs=2, metavar=("LR", "EPOCHS"),
                        help="skip the grid and fit with these (chosen elsewhere, e.g. by bench.experiments."
                             "bank_tuning); writes no result file")
    args = parser.parse_args()
    if not (Path(args.pack) / "meta.json").is_file():
        print(f"skipped: no training pack in {args.pack} (python -m bench.encoder_pack writes it)")
        return 0
    started = time.perf_counter()
    torch.set_num_threads(os.cpu_count() or 2)
    pack = Pack(Path(args.pack))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    questions = [{**q, "index": i} for i, q in enumerate(pack.questions)]
    lr_grid, max_epochs = LR_GRID, MAX_EPOCHS
    if args.smoke:
        questions, lr_grid, max_epochs = [q for q in questions if q["pool"] == "local"][::20], LR_GRID[:1], 1
    fitting = [q for q in questions if not q["validation"]]
    held = [q for q in questions if q["validation"]]
    grid: dict = {}
    if args.fit:
        lr, epochs = float(args.fit[0]), int(args.fit[1])
    else:
        grid["base"] = metrics(pack.base_model(), pack, held)
        print("base", grid["base"]["mean"], flush=True)
        for lr in lr_grid:
            for row in train(pack, fitting, lr, max_epochs, evaluate_on=held, tuned_layers=args.layers)[1]:
                grid[f"lr{lr}_epochs{row['epoch']}"] = row
        best = max((k for k in grid if k != "base"),
                   key=lambda k: (grid[k]["mean"]["mrr@10"], grid[k]["mean"]["R@10"]))
        lr, epochs = grid[best]["lr"], grid[best]["epoch"]
    print(f"chosen: lr {lr}, {epochs} epochs", flush=True)
    settings = {"tau": TAU, "tuned_layers": args.layers, "rank": RANK, "alpha": ALPHA,
                "batch_questions": BATCH_QUESTIONS, "team_repeat": TEAM_REPEAT, "seed": SEED, "lr": lr,
                "epochs": epochs, "base_fingerprint": pack.meta["base_fingerprint"]}
    if any(q["source"] == "bank" for q in questions):
        settings["bank_share"] = BANK_SHARE
    for variant in (*(f"fold{k}" for k in range(FOLDS)), "full"):
        kept = [q for q in questions if q["source"] != "bank_heldout"  # measured, never fitted
                and (variant == "full" or q["ranker_fold"] != int(variant[-1]))]
        meta = {**settings, "variant": variant, "questions": len(kept), "built_by": "python -m bench.train_encoder"}
        if already_trained(out / f"{variant}.safetensors", meta):
            print(f"{variant}: kept from an earlier run with the same settings", flush=True)
            continue
        lora = train(pack, kept, lr, epochs, tuned_layers=args.layers)[0]
        # Written whole, then renamed: a run stopped while writing leaves no half file for a resumed run to keep.
        partial = out / f"{variant}.safetensors.partial"
        save_file(lora_tensors(lora), str(partial), metadata={"kb": json.dumps(meta)})
        partial.replace(out / f"{variant}.safetensors")
    figures = {"questions": len(questions), "fit": len(fitting), "validation": len(held), "settings": settings,
               "grid_on_validation_dense_only": grid, "seconds": round(time.perf_counter() - started, 1),
               "script": "python -m bench.encoder_pack && python -m bench.train_encoder --write"}
    if not args.smoke and not args.fit:
        write_result("encoder_training", figures)
    if args.write and not args.smoke:
        QUERY_LORA.parent.mkdir(parents=True, exist_ok=True)
        QUERY_LORA.write_bytes((out / "full.safetensors").read_bytes())
        print(f"wrote {QUERY_LORA}")
    print(json.dumps({k: figures[k] for k in ("settings", "seconds")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
