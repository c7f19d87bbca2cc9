"""When unsure, show the other candidates: choose the margin on training questions, measure it on held-out ones.

    python -m bench.related [--index DIR]   # prints the margin to put in AnswerParams.related_margin and
                                           # writes bench/results/related.json

Each question is answered as the product answers it (Asker.answer_reading, with the extra candidates
KnowledgeBase.ask retrieves); the other candidates are those kb.answers.related.other_passages gives. For a margin m,
the list is shown when the ranker's first passage scores less than m above its second (kb.answers.related.margin). The
margin is chosen on training questions only (../shared/eval/stard_local_train.jsonl, bench/data/train_local.jsonl):
the smallest that puts the right article on screen (first citation or the list) within TOLERANCE of showing the
list always, so that the list appears as seldom as it can without hiding the right article. Measured, with that
margin, on stard_local_dev.jsonl and dev.jsonl (never used to choose).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import SHARED, write_result
from bench.followup import DATA
from kb.answers.notice import no_answer
from kb.answers.related import margin, other_passages
from kb.config import load_settings
from kb.evaluate import GoldQuestion, load_questions
from kb.knowledge_base import KnowledgeBase
from kb.stores.base import Filters

TOLERANCE = 0.01
TRAINING = (SHARED / "eval" / "stard_local_train.jsonl", DATA / "train_local.jsonl")
MEASURED = (SHARED / "eval" / "stard_local_dev.jsonl", SHARED / "eval" / "dev.jsonl")


@dataclass
class Outcome:
    answerable: bool
    first_gold: bool  # the first citation is the right article
    cited_gold: bool  # one of the citations is
    listed_gold: bool  # one of the other candidates is
    margin: float  # inf where no list can be shown (no answer, a cited article, one candidate)


def outcomes(kb: KnowledgeBase, questions: list[GoldQuestion]) -> list[Outcome]:
    params = kb.answer_params
    refusal = no_answer(kb.identity)
    out = []
    for question in (q for q in questions if q.answerable):
        found = kb.conversation.read(question.q, (), params.passages + params.related_passages, Filters())
        result, hits = kb.asker.answer_reading(question.q, found, params.passages, refusal)
        cited = [c.hit for c in result.citations]
        others = other_passages(cited, hits, params.related_passages)
        showable = result.answerable and not found.retrieval.cited_article
        out.append(Outcome(result.answerable, bool(cited) and question.matches(cited[0]),
                           any(question.matches(h) for h in cited), any(question.matches(h) for h in others),
                           margin(hits, found.follow_up_of is not None) if showable else float("inf")))
    return out


def figures(results: list[Outcome], threshold: float) -> dict:
    shown = np.array([r.margin < threshold for r in results])
    first = np.array([r.first_gold for r in results])
    on_screen = first | (shown & np.array([r.listed_gold for r in results]))
    any_cited = np.array([r.cited_gold for r in results]) | on_screen
    return {"n": len(results), "first_citation_right": round(float(first.mean()), 3),
            "right_on_screen": round(float(on_screen.mean()), 3),
            "right_in_citations_or_list": round(float(any_cited.mean()), 3),
            "list_shown": round(float(shown.mean()), 3)}


def choose(results: list[Outcome]) -> float:
    """The smallest margin whose on-screen share is within TOLERANCE of always showing the list."""
    best = figures(results, float("inf"))["right_on_screen"]
    for threshold in sorted({round(r.margin, 3) for r in results if np.isfinite(r.margin)}):
        if figures(results, threshold)["right_on_screen"] >= best - TOLERANCE:
            return threshold
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index directory (default: the product's)")
    args = parser.parse_args()
    missing = [str(p) for p in TRAINING + MEASURED if not p.is_file()]
    if missing:
        print(f"skipped: missing question files {', '.join(missing)}")
        return
    kb = KnowledgeBase.open(args.index, load_settings())
    training = [r for path in TRAINING for r in outcomes(kb, load_questions(path))]
    threshold = choose(training)
    result = {"related_margin": threshold, "tolerance": TOLERANCE, "configured": kb.answer_params.related_margin,
              "training (in-sample)": {"at_margin": figures(training, threshold),
                                       "never": figures(training, -np.inf), "always": figures(training, np.inf)}}
    for path in MEASURED:
        measured = outcomes(kb, load_questions(path))
        result[path.stem] = {"at_margin": figures(measured, threshold), "never": figures(measured, -np.inf),
                             "always": figures(measured, np.inf)}
    result["script"] = "python -m bench.related"
    print(result)
    print("wrote", write_result("related", result))


if __name__ == "__main__":
    main()
