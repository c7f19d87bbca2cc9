"""Follow-up questions: is the first citation of a conversation's second turn the gold article?

    python -m bench.followup [--index DIR]          # measure both sets → bench/results/followup.json
    python -m bench.followup [--index DIR] --fit    # choose kb.config.FollowUpParams on the fit set only

Two sets of two-turn conversations written by the team (bench/data/): followup_fit.jsonl, on which the
constants of kb.config.FollowUpParams are chosen (--fit: a small grid, best share of gold first citations,
the earliest of equals), and followup_check.jsonl, written separately and only measured. Each has follow-ups (「那要是不满意呢？」) and new topics (a full question on another law after the
first). The second turn is answered without the first (as before) and with it as `history`; the figure is the
share whose first citation is gold (a refusal counts as a miss). Writes bench/results/followup.json, or with
--fit bench/results/followup_fit.json (the grid and its best points).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import statistics
from dataclasses import asdict, replace
from pathlib import Path

from bench.common import timed, write_result
from kb.config import PROJECT_ROOT, FollowUpParams, load_settings
from kb.evaluate import GoldQuestion, load_questions
from kb.knowledge_base import KnowledgeBase

DATA = PROJECT_ROOT / "bench" / "data"


def evaluate(kb: KnowledgeBase, questions: list[GoldQuestion]) -> dict:
    """First-citation accuracy per tag, without and with the conversation; the misses; latency with it."""
    outcome: dict[str, dict[str, list[bool]]] = {"without history": {}, "with history": {}}
    misses, latency = [], []
    for question in questions:
        for variant, history in (("without history", ()), ("with history", question.history)):
            seconds, answer = timed(lambda h=history: kb.ask(question.q, history=h))
            elapsed = seconds * 1000
            hit = bool(answer.citations) and question.matches(answer.citations[0].hit)
            outcome[variant].setdefault(question.tag, []).append(hit)
            if history:
                latency.append(elapsed)
                if not hit:
                    misses.append({"id": question.id, "history": list(history), "q": question.q,
                                   "first_citation": answer.citations[0].hit.citation if answer.citations else None})
    figures = {variant: {tag: {"n": len(v), "first_citation_gold": round(sum(v) / len(v), 3)}
                         for tag, v in sorted(per_tag.items())}
               for variant, per_tag in outcome.items()}
    for variant, per_tag in outcome.items():
        everything = [x for v in per_tag.values() for x in v]
        figures[variant]["all"] = {"n": len(everything), "first_citation_gold": round(sum(everything) / len(everything), 3)}
    figures["ask_ms_with_history"] = {"median": round(statistics.median(latency), 1), "max": round(max(latency), 1)}
    figures["misses_with_history"] = misses
    return figures


GRID = {"new_topic_gap": (0.03, 0.045, 0.06), "together_weight": (0.0, 0.5, 1.0),
        "neighbour_bonus": (0.0, 0.02, 0.05, 0.1), "neighbour_width": (1, 2), "anchor_documents": (1, 2),
        "standalone_gap": (0.015, 0.02, 0.025), "standalone_chars": (12, 14, 16, 1000)}
#: Grid points kept in bench/results/followup_fit.json (the whole grid is too long to commit).
TOP = 20


def fit(kb: KnowledgeBase, questions: list[GoldQuestion]) -> FollowUpParams:
    """The grid point with the most gold first citations on the fit set (with history); the first of equals,
    so the smaller bonuses win ties. Retrievals do not depend on these constants, so they are computed once."""
    kb.retrieve = functools.lru_cache(maxsize=None)(kb.retrieve)  # type: ignore[method-assign]
    best, best_share, grid = kb.follow_up_params, -1.0, []
    for values in itertools.product(*GRID.values()):
        kb.follow_up_params = replace(FollowUpParams(), **dict(zip(GRID, values)))
        share = evaluate(kb, questions)["with history"]["all"]["first_citation_gold"]
        grid.append({**dict(zip(GRID, values)), "first_citation_gold": share})
        print(grid[-1])
        if share > best_share:
            best, best_share = kb.follow_up_params, share
    print("best:", asdict(best), best_share)
    top = sorted(grid, key=lambda g: -g["first_citation_gold"])[:TOP]  # stable: the earliest of equals first
    write_result("followup_fit", {"set": "bench/data/followup_fit.jsonl", "best": asdict(best),
                                  "best_first_citation_gold": best_share, "grid": GRID, "points": len(grid),
                                  f"best_{TOP}_points": top})
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index directory (default: the product's)")
    parser.add_argument("--fit", action="store_true", help="choose the constants on the fit set (printed)")
    args = parser.parse_args()
    kb = KnowledgeBase.open(args.index, load_settings())
    if args.fit:
        fit(kb, load_questions(DATA / "followup_fit.jsonl"))
        return
    names = ["followup_fit", "followup_check"]
    results = {name: evaluate(kb, load_questions(DATA / f"{name}.jsonl")) for name in names}
    for name, figures in results.items():
        for variant in ("without history", "with history"):
            print(name, variant, {tag: f["first_citation_gold"] for tag, f in figures[variant].items()})
    results["settings"] = {"params": asdict(kb.follow_up_params), "index": str(kb.store.path)}
    print("wrote", write_result("followup", results))


if __name__ == "__main__":
    main()
