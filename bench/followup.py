"""Follow-up questions: is the first citation of a conversation's second turn the gold article?

    python -m bench.followup [--index DIR] [--backend B]   # measure both sets → bench/results/followup.json
                                                         # (followup_<B>.json for a backend other than torch)
    python -m bench.followup [--index DIR] --fit    # learn kb/search/rankers/followup.json on the fit set only

Two sets of two-turn conversations written by the team (bench/data/): followup_fit.jsonl, on which the weights
of kb.search.conversation's follow-up ranker are learnt, and followup_check.jsonl, written separately and only
measured; and followup3_check.jsonl, three-turn conversations whose last two turns are both elliptical (only
measured). Each has follow-ups (「那要是不满意呢？」) and new topics (a full question on another subject after
the first). And switch_check.jsonl (bench/switches.py): held-out questions asked right after a question about
another document, which must be answered as if asked alone (the unanswerable ones refused as often). The second
turn is answered without the first (as before) and with it as `history`; the figures are the share whose first
citation is gold (a refusal counts as a miss), the share of unanswerable ones refused, and the share read as
follow-ups. Writes bench/results/followup.json.

--fit: every fit conversation's candidates and features come from the product's own reader
(kb.search.conversation.ConversationReader.candidates); a linear model is learnt by listwise softmax (the gold
candidate should get the probability mass, as for the second stage, bench/train_ranker.py), its L2 weight chosen
by 10-fold cross-validation over conversations (three shuffles), scored by the share of conversations whose best
candidate is gold. Writes the model and bench/results/followup_fit.json (the cross-validated shares).
"""

from __future__ import annotations

import argparse
import random
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.common import timed, write_result
from bench.train_ranker import Example, scaling, standardise
from bench.train_ranker import fit as fit_weights
from kb.config import PROJECT_ROOT, load_settings
from kb.embedding.embedder import BACKENDS
from kb.evaluate import GoldQuestion, load_questions
from kb.knowledge_base import KnowledgeBase
from kb.search.conversation import FOLLOW_UP_FEATURES, FollowUpCandidates
from kb.search.rank import RANKERS_DIR, LinearRanker
from kb.stores.base import Filters

DATA = PROJECT_ROOT / "bench" / "data"
L2_GRID = (0.0001, 0.001, 0.01, 0.1, 1.0)
FOLDS = 10
SHUFFLES = (0, 1, 2)


def evaluate(kb: KnowledgeBase, questions: list[GoldQuestion]) -> dict:
    """Per tag, without and with the conversation: first citations gold (answerable questions), refusals (the
    unanswerable), and with it the share read as follow-ups; the misses; latency with the conversation."""
    outcome: dict[str, dict[str, list[bool]]] = {"without history": {}, "with history": {}}
    refused: dict[str, dict[str, list[bool]]] = {"without history": {}, "with history": {}}
    followed: dict[str, list[bool]] = {}
    misses, latency = [], []
    for question in questions:
        for turn, earlier in enumerate(question.history):  # the earlier turns, as they were asked (vectors are kept)
            kb.ask(earlier, history=question.history[:turn])
        for variant, history in (("with history", question.history), ("without history", ())):
            seconds, answer = timed(lambda h=history: kb.ask(question.q, history=h))
            if not question.answerable:
                refused[variant].setdefault(question.tag, []).append(not answer.answerable)
            else:
                hit = bool(answer.citations) and question.matches(answer.citations[0].hit)
                outcome[variant].setdefault(question.tag, []).append(hit)
            if history:
                latency.append(seconds * 1000)
                followed.setdefault(question.tag, []).append(answer.follow_up_of is not None)
                if question.answerable and not hit:
                    cited = answer.citations[0].hit.citation if answer.citations else "no answer"
                    misses.append(f"{question.id}: {' / '.join(history)} → {question.q} → {cited}")
                elif not question.answerable and answer.answerable:
                    misses.append(f"{question.id}: {' / '.join(history)} → {question.q} → answered "
                                  f"{answer.citations[0].hit.citation}")
    figures: dict = {variant: shares(per_tag) for variant, per_tag in outcome.items() if per_tag}
    for variant, per_tag in refused.items():
        if per_tag:
            figures.setdefault(variant, {})["refused"] = shares(per_tag, "refused")
    figures["read_as_follow_up"] = shares(followed, "share")
    figures["ask_ms_with_history"] = {"median": round(statistics.median(latency), 1), "max": round(max(latency), 1)}
    figures["misses_with_history"] = misses
    return figures


def shares(per_tag: dict[str, list[bool]], name: str = "first_citation_gold") -> dict:
    """Share of true outcomes (gold first citations, by default) per tag and over all."""
    figures = {tag: {"n": len(v), name: round(sum(v) / len(v), 3)} for tag, v in sorted(per_tag.items())}
    everything = [x for v in per_tag.values() for x in v]
    figures["all"] = {"n": len(everything), name: round(sum(everything) / len(everything), 3)}
    return figures


@dataclass
class Conversation:
    """A fit conversation as the reader sees it: its follow-up candidates (None: it is read on its own) and which
    of them are gold, and whether the question's own best passage is."""

    question: GoldQuestion
    found: FollowUpCandidates | None
    gold: np.ndarray
    alone_gold: bool

    def right(self, score) -> bool:
        """Is the first citation gold when candidates are scored by `score`?"""
        if self.found is None:
            return self.alone_gold
        return bool(self.gold[int(np.argmax(score(self.found.features)))])


def conversations(kb: KnowledgeBase, questions: list[GoldQuestion]) -> list[Conversation]:
    reader = kb.conversation
    out = []
    for question in questions:
        alone, found = reader.candidates(question.q, question.history, kb.answer_params.passages, Filters())
        gold = np.array([question.matches(h) for h in found.hits], dtype=bool) if found else np.zeros(0, bool)
        out.append(Conversation(question, found, gold, bool(alone.hits) and question.matches(alone.hits[0])))
    return out


def learn(talks: list[Conversation], l2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, mean, scale) learnt from the conversations whose gold is among their candidates."""
    batch = [Example("followup_fit", t.found.features, t.gold, np.zeros(len(t.gold)))
             for t in talks if t.found is not None and t.gold.any()]
    mean, scale = scaling(batch)
    return fit_weights(standardise(batch, mean, scale), l2), mean, scale


def cross_validated(talks: list[Conversation], l2: float) -> dict:
    """Share of gold first citations per tag, each conversation scored by a model learnt without its fold
    (averaged over the shuffles)."""
    right: dict[str, list[float]] = {}
    outcomes = np.zeros(len(talks))
    for seed in SHUFFLES:
        order = list(range(len(talks)))
        random.Random(seed).shuffle(order)
        for fold in range(FOLDS):
            held = set(order[fold::FOLDS])
            weights, mean, scale = learn([t for i, t in enumerate(talks) if i not in held], l2)
            for i in held:
                outcomes[i] += talks[i].right(lambda f: ((f - mean) / scale) @ weights)
    for talk, outcome in zip(talks, outcomes / len(SHUFFLES)):
        right.setdefault(talk.question.tag, []).append(float(outcome))
    return {tag: round(v["first_citation_gold"], 3) for tag, v in shares(right).items()}


def fit(kb: KnowledgeBase, questions: list[GoldQuestion]) -> Path:
    """Choose the L2 weight by cross-validation, learn on all fit conversations, write the model."""
    talks = conversations(kb, questions)
    by_l2 = {str(l2): cross_validated(talks, l2) for l2 in L2_GRID}
    best = max(L2_GRID, key=lambda l2: (by_l2[str(l2)]["all"], l2))  # the stronger regularisation of equals
    weights, mean, scale = learn(talks, best)
    read_alone = sum(t.found is None for t in talks)
    gold_found = sum(bool(t.gold.any()) for t in talks if t.found is not None)
    meta = {"trained_on": "bench/data/followup_fit.jsonl", "conversations": len(talks),
            "read_on_their_own": read_alone, "gold_among_candidates": gold_found, "l2": best,
            "cross_validated_first_citation_gold": by_l2, "model": kb.embedder.model_id,
            "script": "python -m bench.followup --fit"}
    path = RANKERS_DIR / "followup.json"
    LinearRanker(weights, mean, scale, meta, FOLLOW_UP_FEATURES).save(path)
    write_result("followup_fit", {**meta, "weights": dict(zip(FOLLOW_UP_FEATURES, map(float, np.round(weights, 4))))})
    print(by_l2, "→ l2", best, "wrote", path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index directory (default: the product's)")
    parser.add_argument("--backend", choices=BACKENDS, help="embedding backend (default: the configured one)")
    parser.add_argument("--fit", action="store_true", help="learn the follow-up ranker on the fit set")
    args = parser.parse_args()
    kb = KnowledgeBase.open(args.index, load_settings(**({"embedding_backend": args.backend} if args.backend else {})))
    if args.fit:
        fit(kb, load_questions(DATA / "followup_fit.jsonl"))
        return
    names = [n for n in ("followup_fit", "followup_check", "followup3_check", "switch_check")
             if (DATA / f"{n}.jsonl").is_file()]
    results = {name: evaluate(kb, load_questions(DATA / f"{name}.jsonl")) for name in names}
    for name, figures in results.items():
        for variant in ("without history", "with history"):
            print(name, variant, {tag: f.get("first_citation_gold", f) for tag, f in figures[variant].items()})
        print(name, "read as follow-ups", {tag: f["share"] for tag, f in figures["read_as_follow_up"].items()})
    ranker = kb.conversation.ranker
    backend = kb.embedder.backend
    results["settings"] = {"params": asdict(kb.conversation.params), "index": str(kb.store.path), "backend": backend,
                           "ranker_l2": ranker.meta.get("l2") if ranker else None}
    print("wrote", write_result("followup" if backend == "torch" else f"followup_{backend}", results))


if __name__ == "__main__":
    main()
