"""The answer stage's three outcomes — answered, shown as related (not the answer), refused — on sets the team
wrote for it and on the answerable measurement sets.

    python -m bench.abstention [--index DIR]

- bench/data/near_domain_check.jsonl: questions a township's citizens ask that these documents do not answer
  (facts about the township, another year, another place, services and laws not held), written apart from
  bench/data/near_domain_fit.jsonl, on which the checks of kb/answers/evidence.py were developed, and never used to
  fit anything. The figure: the share refused or shown as related.
- bench/data/abstention_check.jsonl: off-topic and in-scope questions written after the calibration.
- ../shared/eval/dev.jsonl and stard_local_dev.jsonl (answerable): the share wrongly refused or only related.
Writes bench/results/abstention.json.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bench.common import SHARED, write_result
from kb.config import PROJECT_ROOT, load_settings
from kb.evaluate import GoldQuestion, load_questions
from kb.knowledge_base import KnowledgeBase

DATA = PROJECT_ROOT / "bench" / "data"
SETS = {"near_domain_check": DATA / "near_domain_check.jsonl", "near_domain_fit": DATA / "near_domain_fit.jsonl",
        "abstention_check": DATA / "abstention_check.jsonl", "dev": SHARED / "eval" / "dev.jsonl",
        "stard_local_dev": SHARED / "eval" / "stard_local_dev.jsonl"}


def outcome(kb: KnowledgeBase, question: str) -> str:
    answer = kb.ask(question)
    return "answered" if answer.answerable else "related" if answer.related else "refused"


def confusion(kb: KnowledgeBase, questions: list[GoldQuestion]) -> dict:
    """Outcomes of the answerable and of the unanswerable questions (by kind for the near-domain ones), and
    the questions whose outcome is wrong."""
    counts: dict[str, Counter] = {}
    wrong = []
    for question in questions:
        result = outcome(kb, question.q)
        group = "answerable" if question.answerable else question.kind or question.tag
        counts.setdefault(group, Counter())[result] += 1
        if question.answerable != (result == "answered"):
            wrong.append({"id": question.id, "q": question.q, "outcome": result})
    figures: dict = {group: dict(c) for group, c in sorted(counts.items())}
    unanswerable = sum((c for g, c in counts.items() if g != "answerable"), Counter())
    if unanswerable:
        total = sum(unanswerable.values())
        figures["unanswerable_refused_or_related"] = round((total - unanswerable["answered"]) / total, 3)
    if "answerable" in counts:
        total = sum(counts["answerable"].values())
        figures["answerable_not_answered"] = round((total - counts["answerable"]["answered"]) / total, 3)
    figures["wrong"] = wrong
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index directory (default: the product's)")
    args = parser.parse_args()
    kb = KnowledgeBase.open(args.index, load_settings())
    results = {name: confusion(kb, load_questions(path)) for name, path in SETS.items() if path.is_file()}
    for name, figures in results.items():
        print(name, {k: v for k, v in figures.items() if k != "wrong"})
    results["note"] = ("near_domain_fit was used to develop kb/answers/evidence.py (in-sample); every other set is "
                       "held out. Settings: product defaults.")
    print("wrote", write_result("abstention", results))


if __name__ == "__main__":
    main()
