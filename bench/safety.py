"""The danger check of the notice (kb/answers/safety.py): does a question that speaks of violence, threats, self-harm or
abuse of a child or an elder get 110 and the right help line, and do ordinary questions get none?

    python -m bench.safety [--index DIR]

- Training (in-sample): the shipped phrasings (kb/answers/safety_phrasings.json), each scored leave-one-out, as the
  threshold was chosen.
- Check: bench/data/safety_check.jsonl, written apart from the phrasings with other words and situations, each
  question with its category ("none" for ordinary ones, near misses included). Only measured, never used to choose
  anything. Each question is asked as a citizen asks it (KnowledgeBase.ask) and its notice read: recall is the
  share of a category's questions whose notice starts with 110, right_line the share found to be of their own
  category (so the notice carries that category's line and no other); the false-positive rate the share of
  ordinary questions whose notice starts with 110.
- Costs: the first question's (embedding the phrasings and choosing the threshold), and a question's afterwards:
  once retrieval has embedded it (as in KnowledgeBase.ask, measured on the check list) and when it has not.
Writes bench/results/safety.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections import Counter
from pathlib import Path

import numpy as np

from bench.common import percentiles, timed, timed_ms, write_result
from kb.answers.notice import DANGER_NOW, danger_lines
from kb.answers.safety import Danger, DangerModel, Phrasings
from kb.config import PROJECT_ROOT, load_settings
from kb.knowledge_base import KnowledgeBase

CHECK = PROJECT_ROOT / "bench" / "data" / "safety_check.jsonl"
ORDINARY = "none"


def shares(outcomes: dict[str, list[bool]]) -> dict[str, float]:
    return {category: round(float(np.mean(values)), 3) for category, values in outcomes.items()}


def training_figures(model: DangerModel, phrasings: Phrasings) -> dict:
    """Leave-one-out recall and right kind per category, and the false-positive rate, on the phrasings."""
    detected: dict[str, list[bool]] = {kind.value: [] for kind in Danger}
    right: dict[str, list[bool]] = {kind.value: [] for kind in Danger}
    false_alarms = []
    for scores, group in zip(model.training_scores, model.training_groups):
        found = model.decide(scores)
        if group == len(Danger):
            false_alarms.append(found is not None)
            continue
        kind = list(Danger)[group]
        detected[kind.value].append(found is not None)
        right[kind.value].append(found == kind)
    return {"phrasings": {**{kind.value: len(texts) for kind, texts in phrasings.danger.items()},
                          ORDINARY: len(phrasings.ordinary)},
            "recall": shares(detected), "right_line": shares(right),
            "false_positive_rate": round(float(np.mean(false_alarms)), 3)}


def check_figures(kb: KnowledgeBase, questions: list[dict]) -> dict:
    """Each check question asked as a citizen asks it: whether its notice starts with 110 and carries the line of
    the question's category, and what the check cost once retrieval had embedded the question."""
    detected: dict[str, list[bool]] = {kind.value: [] for kind in Danger}
    right: dict[str, list[bool]] = {kind.value: [] for kind in Danger}
    false_alarms, wrong, after_retrieval_ms = [], [], []
    seen: Counter = Counter()
    for item in questions:
        question, category = item["q"], item["category"]
        notice = kb.ask(question).notice
        seconds, found = timed(kb.safety.danger, question)
        after_retrieval_ms.append(seconds * 1000)
        assert notice.startswith(danger_lines(found)), "the notice and the check disagree"
        found_category = found.value if found else ORDINARY
        seen[(category, found_category)] += 1
        if found_category != category:
            wrong.append({"id": item["id"], "q": question, "category": category, "found": found_category})
        if category == ORDINARY:
            false_alarms.append(notice.startswith(DANGER_NOW))
        else:
            detected[category].append(notice.startswith(DANGER_NOW))
            right[category].append(found_category == category)
    categories = [kind.value for kind in Danger] + [ORDINARY]
    return {"questions": dict(Counter(item["category"] for item in questions)),
            "recall": shares(detected), "recall_all": round(float(np.mean(sum(detected.values(), []))), 3),
            "right_line": shares(right), "right_line_all": round(float(np.mean(sum(right.values(), []))), 3),
            "false_positive_rate": round(float(np.mean(false_alarms)), 3),
            "confusion": {truth: {found: seen[(truth, found)] for found in categories if seen[(truth, found)]}
                          for truth in categories},
            "wrong": wrong,
            "cost_after_retrieval_ms": percentiles(after_retrieval_ms)}


def cold_cost_ms(kb: KnowledgeBase, texts: list[str]) -> dict[str, float]:
    """The check's cost for questions retrieval has not embedded, as when retrieval embedded an expanded text
    (kb/search/expand.py): the ordinary phrasings, embedded in a batch when the model was fitted, not as questions."""
    return percentiles([timed_ms(kb.safety.danger, text) for text in texts])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="index directory (default: the product's)")
    args = parser.parse_args()
    settings = load_settings()
    kb = KnowledgeBase.open(args.index, settings)
    kb.retrieve("信访事项多久办结？")  # the model's own first-call cost is not the check's
    first_use_s, model = timed(kb.safety.model)
    phrasings = Phrasings.load(kb.safety.phrasings)
    questions = [json.loads(line) for line in CHECK.read_text(encoding="utf-8").splitlines() if line.strip()]
    results = {
        "threshold": round(model.threshold, 6),
        "training_leave_one_out (in-sample)": training_figures(model, phrasings),
        "check": check_figures(kb, questions),
        "first_use_s": round(first_use_s, 2),
        "cost_question_not_yet_embedded_ms": cold_cost_ms(kb, phrasings.ordinary),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, shared with other work; embedding backend "
                   f"{settings.embedding_backend}",
        "note": ("The threshold is chosen at first use by leave-one-out on the shipped phrasings (kb/answers/safety.py); "
                 "the check list is held out. recall: the notice starts with 110; right_line: the question is "
                 "found to be of its own category, so the notice carries that category's line. first_use_s: "
                 "embedding the phrasings and choosing the threshold (the model already warm), added to the first "
                 "question a process answers."),
    }
    print(json.dumps({k: v for k, v in results.items() if k != "check"}, ensure_ascii=False, indent=1))
    print(json.dumps({k: v for k, v in results["check"].items() if k != "wrong"}, ensure_ascii=False, indent=1))
    print("wrong:", *(f"  {w}" for w in results["check"]["wrong"]), sep="\n")
    print("wrote", write_result("safety", results))


if __name__ == "__main__":
    main()
