"""Would a small cross-encoder put the answering article first more often than the learned linear ranker?

    python -m bench.experiments.cross_encoder [--index DIR] [--layers 4] [--top 5] [--epochs 3] [--bank SHARE]

An experiment on training questions only (../shared/eval/stard_local_train.jsonl and bench/data/train_local.jsonl,
as bench.train_ranker reads them, with its cross-fitted features and its fixed 20 % validation part). The
baseline is the linear ranker refitted on the training part alone, so the validation figures of both are
out-of-sample. The cross-encoder is the bottom LAYERS layers of the model we build (multilingual-e5-small), reading
「query: question」 and 「passage: article」 together, mean-pooled, with a linear score on top; it is trained on the
training part (listwise softmax over the gold passage and the ranker's other top candidates), then reorders the
ranker's top k of each validation question. Few layers because of the latency budget: bench.experiments.rerank_cost
measures what each pair costs.

--bank SHARE (issue 22: "now that there are thousands of training pairs"): each epoch also trains on a fresh
sample of the question bank's shipped questions (the index's handles), SHARE of them per real training question,
their negatives the ranker's best other candidates as for the real ones; and the cross-encoder alone is measured
on the bank's held-out articles (never trained on) beside the real validation questions. With the bank, the
combination with the ranker is read at three weights of the cross-encoder's standardised score (the old run
added both at weight 1); those weights are compared on the validation part itself, so the best of them is an
upper bound, not a measurement.
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
from bench.question_bank import held_out_bank
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
from kb.stores.handles import passage_key

MAX_TOKENS = 192
NEGATIVES = 7
LR = 5e-5
L2 = 0.01
#: With --bank: the cross-encoder's weight beside the ranker's standardised score in the combination.
BANK_WEIGHTS = (0.25, 0.5, 1.0)
#: With --bank: the bank's held-out questions measured (a seeded sample; the cross-encoder reads 5 pairs each).
HELDOUT_SAMPLE = 400


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
    parser.add_argument("--bank", type=float, default=0.0,
                        help="bank questions trained on per real training question and epoch (0: none)")
    args = parse_experiment(parser)
    if args is None:
        return 0
    started = time.perf_counter()
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    settings = load_settings(index_dir=Path(args.index))
    kb = KnowledgeBase.open(settings=settings)
    retrievers = [ranking_retriever(scorer) for scorer in cross_fitted(Path(args.index), kb) or [kb]]

    def candidates(source: str, items) -> list:
        """(source, question, candidate texts, features, gold) for the questions whose answer the first stage finds."""
        out = []
        for question, answers in items:
            retriever = retrievers[fold(question) % len(retrievers)]  # one per fold, built once
            stage = retriever.first_stage(question, Filters(), retriever.params)
            gold = np.array([answers(c) for c in stage.candidates.chunks], dtype=bool) if stage else None
            if gold is not None and gold.any():
                out.append((source, question, [c.text for c in stage.candidates.chunks],
                            retriever.features(question, stage), gold))
        return out

    rows = [row for path in LOCAL_SETS for row in candidates(path.stem, local_items(kb, load_questions(path)))]
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
    bank_groups: list = []
    heldout: list = []
    if args.bank:
        drawn = random.Random(SEED).sample(kb.store.handles.handles if kb.store.handles else [],
                                           int(args.bank * len(training) * args.epochs))
        bank_groups = groups(candidates("bank", [(h.question, lambda c, key=h.key: passage_key(c) == key)
                                                 for h in drawn]))
        sample = random.Random(SEED).sample(held_out_bank(), HELDOUT_SAMPLE)
        heldout = candidates("bank_heldout", local_items(kb, sample))
        print(f"bank: {len(bank_groups)} training questions, {len(heldout)} held-out", flush=True)
    per_epoch = len(bank_groups) // max(args.epochs, 1)
    history = []

    def rerank_scores(part, weights: tuple[float | None, ...]) -> list[list[np.ndarray]]:
        """Per weight, each question's scores with the ranker's top k reordered: by the cross-encoder alone
        (None), or by the ranker's standardised score plus the cross-encoder's times the weight."""
        model.eval()
        out: list[list[np.ndarray]] = [[] for _ in weights]
        with torch.no_grad():
            for _, question, texts, features, _ in part:
                base = linear(features)
                top = np.argsort(-base, kind="stable")[: args.top]
                cross = model(*batch(question, [texts[i] for i in top])).numpy()
                for scores, weight in zip(out, weights):
                    score = base.copy()
                    score[top] = base.max() + 1 + (cross if weight is None else
                                                   (base[top] - base[top].mean()) / (base[top].std() + 1e-9)
                                                   + weight * (cross - cross.mean()) / (cross.std() + 1e-9))
                    scores.append(score)
        return out

    def measured(part, scores: list[np.ndarray]) -> dict:
        return ranking_metrics(as_examples(part, scores), lambda e: e.first_stage)

    modes: dict[str, float | None] = {"cross-encoder alone": None}
    modes.update({f"cross-encoder × {w} + ranker": w for w in BANK_WEIGHTS} if args.bank
                 else {"cross-encoder + ranker": 1.0})
    baseline = measured(validation, [linear(r[3]) for r in validation])
    print("linear ranker (validation)", baseline["mean"], flush=True)
    if heldout:
        baseline["bank_heldout"] = measured(heldout, [linear(r[3]) for r in heldout])
    for epoch in range(1, args.epochs + 1):
        model.train()
        epoch_groups = train_groups + bank_groups[(epoch - 1) * per_epoch: epoch * per_epoch]
        rng.shuffle(epoch_groups)
        for question, passages in epoch_groups:
            scores = model(*batch(question, passages))
            loss = -torch.log_softmax(scores, dim=0)[0]
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        row = {"epoch": epoch, **{mode: measured(validation, scores)
                                  for mode, scores in zip(modes, rerank_scores(validation, tuple(modes.values())))}}
        if heldout:
            row["bank_heldout, cross-encoder alone"] = measured(heldout, rerank_scores(heldout, (None,))[0])
        history.append(row)
        print(epoch, {m: row[m]["mean"] for m in row if m != "epoch"}, f"{time.perf_counter() - started:.0f} s",
              flush=True)
    figures: dict = {"questions": {"training": len(training), "validation": len(validation)},
               "settings": {"layers": args.layers, "top": args.top, "max_tokens": MAX_TOKENS, "negatives": NEGATIVES,
                            "lr": LR, "seed": SEED, "ranker_l2": L2, "epochs": args.epochs},
               "validation": {"linear ranker (training part only)": baseline, "by_epoch": history},
               "seconds": round(time.perf_counter() - started), "script": "python -m bench.experiments.cross_encoder"}
    if args.bank:
        figures["questions"] = {**figures["questions"], "bank": len(bank_groups), "bank_heldout": len(heldout)}
        figures["settings"] = {**figures["settings"], "bank_share": args.bank, "question_tuning": settings.query_tuning,
                               "question_tuning_cross_fitted": len(retrievers) > 1}
    write_result("cross_encoder_bank" if args.bank else "cross_encoder", figures, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
