"""Would tuning the passage side of the embedding model too rank better than tuning the question side alone?

    python -m bench.experiments.passage_tuning [--index DIR] [--epochs 3]

An experiment on corpus/'s training questions (../shared/eval/stard_local_train.jsonl and the team's
bench/data/train_local.jsonl; bench.encoder_pack's fixed 20 % validation part), dense retrieval only, over all
passages of corpus/. Both variants update the top TUNED_LAYERS layers with LoRA as bench.train_encoder does
(same rank, learning rate, temperature, batch and team weighting), on the same questions:

* "questions only": what the product ships — the passages keep the model's own vectors;
* "questions and passages": one update applied to both, so the passages move too. Each step re-encodes the
  batch's gold passages and the HARD_NEGATIVES passages nearest each question (with gradients); the rest of
  the pool keeps the vectors of the last epoch's end.

The bottom layers are frozen in both, so their output is computed once per text. Shipping the second variant
would change every passage vector (a new model fingerprint: re-embedding, recalibrating the answer model and
the ranker, re-measuring STARD's 55,956 articles); this measures whether that is worth it.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import EXPERIMENT_RESULTS, write_result
from bench.encoder_pack import validation
from bench.train_encoder import ALPHA, BATCH_QUESTIONS, RANK, SEED, TAU, TEAM_REPEAT, TUNED_LAYERS, LoraLinear
from bench.train_ranker import LOCAL_SETS, experiment_parser, local_items, parse_experiment
from kb.config import load_settings
from kb.embedding.model.tuning import LORA_TARGETS
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.expand import expand_query

LR = 1e-3
HARD_NEGATIVES = 4
MAX_TOKENS = 512
States = list[torch.Tensor]  # per text: its tokens' hidden states after the frozen layers


class Split:
    """The model cut where the tuning starts: frozen bottom layers, LoRA-wrapped top layers."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer
        from transformers import BertModel

        self.bert = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval()
        self.bert.requires_grad_(False)
        self.cut = len(self.bert.encoder.layer) - TUNED_LAYERS
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.lora: list[LoraLinear] = []

    def bottom(self, texts: list[str]) -> States:
        out: States = []
        with torch.no_grad():
            for encoding in self.tokenizer.encode_batch(texts):
                ids = torch.tensor([encoding.ids])
                hidden = self.bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
                for layer in self.bert.encoder.layer[: self.cut]:
                    hidden = layer(hidden)
                out.append(hidden[0])
        return out

    def top(self, states: States, grad: bool) -> torch.Tensor:
        """Mean-pooled, normalised vectors of texts from their bottom states (padded batches of similar length)."""
        order = sorted(range(len(states)), key=lambda i: len(states[i]))
        vectors: list[torch.Tensor | None] = [None] * len(states)
        for start in range(0, len(order), 64):
            rows = order[start:start + 64]
            width = max(len(states[i]) for i in rows)
            hidden = torch.zeros(len(rows), width, states[0].shape[1])
            mask = torch.zeros(len(rows), width)
            for n, i in enumerate(rows):
                hidden[n, :len(states[i])], mask[n, :len(states[i])] = states[i], 1
            with torch.set_grad_enabled(grad):
                additive = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
                for layer in self.bert.encoder.layer[self.cut:]:
                    hidden = layer(hidden, attention_mask=additive)
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
                for n, i in enumerate(rows):
                    vectors[i] = torch.nn.functional.normalize(pooled[n], dim=-1)
        return torch.stack(vectors)

    def reset_lora(self) -> list[torch.nn.Parameter]:
        """Fresh LoRA wrappers (B = 0: the model as built) on the top layers; returns their parameters."""
        layers = self.bert.encoder.layer
        self.lora = []
        for i in range(self.cut, len(layers)):
            for target in LORA_TARGETS:
                parent_path, attr = target.rsplit(".", 1)
                parent = layers[i].get_submodule(parent_path)
                base = getattr(parent, attr)
                base = base.base if isinstance(base, LoraLinear) else base  # a previous variant's wrapper
                module = LoraLinear(base, RANK, ALPHA)
                setattr(parent, attr, module)
                self.lora.append(module)
        return [p for m in self.lora for p in (m.lora_a, m.lora_b)]


def metrics(questions: list[dict], vectors: torch.Tensor, pool: torch.Tensor) -> dict:
    by_source: dict[str, list[tuple[float, float]]] = {}
    for q, vector in zip(questions, vectors):
        top = torch.topk(pool @ vector, 10).indices.tolist()
        rank = next((r for r, i in enumerate(top, 1) if i in q["gold"]), None)
        by_source.setdefault(q["source"], []).append((float(rank == 1), 1 / rank if rank else 0.0))
    out = {s: {"n": len(v), "hit@1": round(float(np.mean([a for a, _ in v])), 4),
               "mrr@10": round(float(np.mean([b for _, b in v])), 4)} for s, v in sorted(by_source.items())}
    out["mean"] = {k: round(float(np.mean([m[k] for m in out.values()])), 4) for k in ("hit@1", "mrr@10")}
    return out


def main() -> int:
    parser = experiment_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    args = parse_experiment(parser)
    if args is None:
        return 0
    started = time.perf_counter()
    torch.set_num_threads(2)
    settings = load_settings(index_dir=Path(args.index))
    kb = KnowledgeBase.open(settings=settings)
    chunks = kb.store.chunks
    questions = []
    for path, source in zip(LOCAL_SETS, ("stard_local", "team")):
        for text, answers in local_items(kb, load_questions(path)):
            gold = [r for r, chunk in enumerate(chunks) if answers(chunk)]
            if gold:
                questions.append({"text": text, "source": source, "gold": gold, "validation": validation(text)})
    model = Split(settings.model_dir)
    passages = model.bottom([f"passage: {c.text}" for c in chunks])
    asked = model.bottom([f"query: {expand_query(q['text'])}" for q in questions])
    held = [i for i, q in enumerate(questions) if q["validation"]]
    fitting = [i for i, q in enumerate(questions) if not q["validation"]]
    print(f"{len(fitting)} fitting, {len(held)} validation questions; "
          f"bottom layers {time.perf_counter() - started:.0f} s",
          flush=True)

    def measure(pool: torch.Tensor) -> dict:
        with torch.no_grad():
            return metrics([questions[i] for i in held], model.top([asked[i] for i in held], False), pool)

    with torch.no_grad():
        as_built = model.top(passages, False)
    results = {"model as built": measure(as_built)}
    print("model as built", results["model as built"], flush=True)
    for variant in ("questions only", "questions and passages"):
        torch.manual_seed(SEED)
        rng = random.Random(SEED)
        optimiser = torch.optim.AdamW(model.reset_lora(), lr=LR, weight_decay=0.0)
        pool = as_built
        schedule = [i for i in fitting for _ in range(TEAM_REPEAT if questions[i]["source"] == "team" else 1)]
        results[variant] = {}
        for epoch in range(1, args.epochs + 1):
            rng.shuffle(schedule)
            for start in range(0, len(schedule), BATCH_QUESTIONS):
                batch = schedule[start:start + BATCH_QUESTIONS]
                vectors = model.top([asked[i] for i in batch], True)
                current = pool
                if variant == "questions and passages":
                    with torch.no_grad():
                        nearest = vectors @ pool.T
                    fresh: set[int] = set()
                    for row, i in enumerate(batch):
                        gold = questions[i]["gold"]
                        nearest[row, gold] = -2.0
                        fresh |= set(gold) | set(torch.topk(nearest[row], HARD_NEGATIVES).indices.tolist())
                    rows = sorted(fresh)
                    current = pool.clone()
                    current[rows] = model.top([passages[r] for r in rows], True)
                log_p = torch.log_softmax(vectors @ current.T / TAU, dim=-1)
                loss = torch.stack([-torch.logsumexp(log_p[row, questions[i]["gold"]], dim=0)
                                    for row, i in enumerate(batch)]).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if variant == "questions and passages":
                with torch.no_grad():
                    pool = model.top(passages, False)
            results[variant][f"epoch {epoch}"] = measure(pool)
            print(variant, epoch, results[variant][f"epoch {epoch}"]["mean"],
                  f"{time.perf_counter() - started:.0f} s", flush=True)
    figures = {"questions": {"fitting": len(fitting), "validation": len(held)}, "passages": len(chunks),
               "settings": {"tuned_layers": TUNED_LAYERS, "rank": RANK, "alpha": ALPHA, "lr": LR, "tau": TAU,
                            "batch_questions": BATCH_QUESTIONS, "team_repeat": TEAM_REPEAT,
                            "hard_negatives": HARD_NEGATIVES, "seed": SEED},
               "validation_dense_only": results, "seconds": round(time.perf_counter() - started),
               "script": "python -m bench.experiments.passage_tuning"}
    write_result("passage_tuning", figures, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
