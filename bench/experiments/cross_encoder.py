"""Would a small cross-encoder put the answering article first more often than the learned linear ranker?

    python -m bench.experiments.cross_encoder [--index DIR] [--layers 4] [--top 5] [--epochs 3]

An experiment on training questions only (../shared/eval/stard_local_train.jsonl and bench/data/train_local.jsonl,
as bench.train_ranker reads them, with its cross-fitted features and its fixed 20 % validation part). The
baseline is the linear ranker refitted on the training part alone, so the validation figures of both are
out-of-sample. The cross-encoder is the bottom LAYERS layers of the model we build (multilingual-e5-small), reading
「query: question」 and 「passage: article」 together, mean-pooled, with a linear score on top; it is trained on the
training part (listwise softmax over the gold passage and the ranker's other top candidates), then reorders the
ranker's top k of each validation question. Few layers because of the latency budget: bench.experiments.rerank_cost
measures what each pair costs.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import EXPERIMENT_RESULTS, write_result
from bench.crossfit import cross_fitted, fold
from bench.train_ranker import (
    LOCAL_SETS,
    SEED,
    VALIDATION_SHARE,
    Example,
    experiment_parser,
    fit,
    local_items,
    parse_experiment,
    ranking_metrics,
    ranking_retriever,
    standardise,
)
from kb.config import load_settings
from kb.evaluate import load_questions
from kb.knowledge_base import KnowledgeBase
from kb.stores.base import Filters

MAX_TOKENS = 192
NEGATIVES = 7
LR = 5e-5
L2 = 0.01


class CrossEncoder(torch.nn.Module):
    def __init__(self, model_dir: Path, layers: int) -> None:
        from transformers import BertModel

        super().__init__()
        self.bert = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False)
        self.bert.encoder.layer = self.bert.encoder.layer[:layers]
        self.bert.embeddings.requires_grad_(False)  # 250k-word vocabulary: left as the model has it
        self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.head(pooled).squeeze(-1)


def main() -> int:
    parser = experiment_parser(__doc__)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--top", type=int, default=5, help="how many of the ranker's best the cross-encoder reorders")
    parser.add_argument("--epochs", type=int, default=3)
    args = parse_experiment(parser)
    if args is None:
        return 0
    started = time.perf_counter()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    settings = load_settings(index_dir=Path(args.index))
    kb = KnowledgeBase.open(settings=settings)
    retrievers = [ranking_retriever(scorer) for scorer in cross_fitted(Path(args.index), kb) or [kb]]
    rows = []  # (source, question, candidate texts, features, gold)
    for path in LOCAL_SETS:
        for question, answers in local_items(kb, load_questions(path)):
            retriever = retrievers[fold(question) % len(retrievers)]  # one per fold, built once
            stage = retriever.first_stage(question, Filters(), retriever.params)
            gold = np.array([answers(c) for c in stage.candidates.chunks], dtype=bool) if stage else None
            if gold is not None and gold.any():
                rows.append((path.stem, question, [c.text for c in stage.candidates.chunks],
                             retriever.features(question, stage), gold))
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    cut = int(len(order) * VALIDATION_SHARE)
    validation, training = [rows[i] for i in order[:cut]], [rows[i] for i in order[cut:]]

    def as_examples(part, scores: list[np.ndarray] | None = None) -> list[Example]:
        """bench.train_ranker's examples, with `scores` (one array per question) as the order to measure."""
        return [Example(source, features, gold, scores[n] if scores else np.zeros(len(gold)))
                for n, (source, _, _, features, gold) in enumerate(part)]

    stacked = np.vstack([r[3] for r in training])
    mean, scale = stacked.mean(0), np.where(stacked.std(0) > 0, stacked.std(0), 1.0)
    weights = fit(standardise(as_examples(training), mean, scale), L2)

    def linear(features: np.ndarray) -> np.ndarray:
        return ((features - mean) / scale) @ weights

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(settings.model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS, strategy="only_second")
    model = CrossEncoder(settings.model_dir, args.layers)

    def batch(question: str, passages: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = [e.ids for e in tokenizer.encode_batch([(f"query: {question}", f"passage: {p}") for p in passages])]
        width = max(map(len, encoded))
        ids = torch.zeros(len(encoded), width, dtype=torch.long)
        mask = torch.zeros(len(encoded), width)
        for n, row in enumerate(encoded):
            ids[n, :len(row)], mask[n, :len(row)] = torch.tensor(row), 1
        return ids, mask

    def groups(part):
        """Per question: the gold passage first, then the ranker's best other candidates."""
        out = []
        for _, question, texts, features, gold in part:
            ranked = np.argsort(-linear(features), kind="stable")
            negatives = [int(i) for i in ranked if not gold[i]][:NEGATIVES]
            out.append((question, [texts[int(np.flatnonzero(gold)[0])]] + [texts[i] for i in negatives]))
        return out

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=LR)
    rng = random.Random(SEED)
    train_groups = groups(training)
    history = []

    def rerank_scores(part, mode: str) -> list[np.ndarray]:
        model.eval()
        out = []
        with torch.no_grad():
            for _, question, texts, features, _ in part:
                base = linear(features)
                top = np.argsort(-base, kind="stable")[: args.top]
                cross = model(*batch(question, [texts[i] for i in top])).numpy()
                score = base.copy()
                lifted = base.max() + 1 + (cross if mode == "cross-encoder alone" else
                                           (base[top] - base[top].mean()) / (base[top].std() + 1e-9)
                                           + (cross - cross.mean()) / (cross.std() + 1e-9))
                score[top] = lifted
                out.append(score)
        return out

    def measured(part, scores: list[np.ndarray]) -> dict:
        return ranking_metrics(as_examples(part, scores), lambda e: e.first_stage)

    baseline = measured(validation, [linear(r[3]) for r in validation])
    print("linear ranker (validation)", baseline["mean"], flush=True)
    for epoch in range(1, args.epochs + 1):
        model.train()
        rng.shuffle(train_groups)
        for question, passages in train_groups:
            scores = model(*batch(question, passages))
            loss = -torch.log_softmax(scores, dim=0)[0]
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        row = {"epoch": epoch, **{mode: measured(validation, rerank_scores(validation, mode))
                                  for mode in ("cross-encoder alone", "cross-encoder + ranker")}}
        history.append(row)
        print(epoch, {m: row[m]["mean"] for m in row if m != "epoch"}, f"{time.perf_counter() - started:.0f} s",
              flush=True)
    figures = {"questions": {"training": len(training), "validation": len(validation)},
               "settings": {"layers": args.layers, "top": args.top, "max_tokens": MAX_TOKENS, "negatives": NEGATIVES,
                            "lr": LR, "seed": SEED, "ranker_l2": L2},
               "validation": {"linear ranker (training part only)": baseline, "by_epoch": history},
               "seconds": round(time.perf_counter() - started), "script": "python -m bench.experiments.cross_encoder"}
    write_result("cross_encoder", figures, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
