"""Topic switches: a complete question asked right after a question about another document.

    python -m bench.switches     # (re)writes bench/data/switch_fit.jsonl and bench/data/switch_check.jsonl

A conversation does not stay on one subject: after 「信访事项多久办结？」 a citizen may ask about an inheritance,
or about the weather. Such a question must be answered exactly as if it were asked alone. These sets are built
automatically, with a fixed seed, by putting before each question a random answerable question of another
document (and, for questions the knowledge base cannot answer, a random answerable one):

- switch_fit.jsonl, for learning when a question depends on the one before it (kb.search.conversation's gate), from
  training questions only: bench/data/train_local.jsonl, a sample of ../shared/eval/stard_local_train.jsonl,
  and the unanswerable questions of bench/data/abstention_calibration.jsonl and near_domain_fit.jsonl;
- switch_check.jsonl, only measured (bench/followup.py): the questions of ../shared/eval/dev.jsonl, a sample of
  stard_local_dev.jsonl, and the unanswerable ones of bench/data/abstention_check.jsonl and near_domain_check.jsonl.

Tags: "switch" (answerable, gold as in the source), "switch_unanswerable" (should be refused as when asked alone).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from bench.common import SHARED
from kb.config import PROJECT_ROOT

DATA = PROJECT_ROOT / "bench" / "data"
EVAL = SHARED / "eval"
SEED = 21
#: STARD questions taken into each set (most are about 民法典; the sets should not be dominated by it).
STARD_SAMPLE = {"fit": 200, "check": 80}
SOURCES = {
    "fit": (DATA / "train_local.jsonl", EVAL / "stard_local_train.jsonl",
            DATA / "abstention_calibration.jsonl", DATA / "near_domain_fit.jsonl"),
    "check": (EVAL / "dev.jsonl", EVAL / "stard_local_dev.jsonl",
              DATA / "abstention_check.jsonl", DATA / "near_domain_check.jsonl"),
}


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build(name: str, rng: random.Random) -> list[dict]:
    """One set: every question of the sources, each after a random answerable question of another document."""
    local, stard, *unanswerable_sources = SOURCES[name]
    stard_rows = read_rows(stard)
    questions = read_rows(local) + rng.sample(stard_rows, min(STARD_SAMPLE[name], len(stard_rows)))
    questions += [row for path in unanswerable_sources for row in read_rows(path)]
    answerable = [q for q in questions if q.get("answerable", True) and q.get("doc")]
    out = []
    for row in questions:
        is_answerable = row.get("answerable", True) and bool(row.get("doc"))
        if not is_answerable and row.get("answerable", True):
            continue  # an in-scope question without a gold document: nothing to check it against
        before = rng.choice([p for p in answerable if p["doc"] != row.get("doc")])
        out.append({"id": f"sw_{name}_{row['id']}", "history": [before["q"]], "q": row["q"],
                    "doc": row.get("doc"), "articles": row.get("articles", []), "contains": row.get("contains", []),
                    "answerable": is_answerable, "tag": "switch" if is_answerable else "switch_unanswerable",
                    "previous_doc": before["doc"]})
    return out


def main() -> None:
    missing = [str(p) for paths in SOURCES.values() for p in paths if not p.is_file()]
    if missing:
        sys.exit(f"missing source files: {', '.join(missing)}")
    rng = random.Random(SEED)
    for name in SOURCES:
        rows = build(name, rng)
        path = DATA / f"switch_{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tags = {t: sum(r["tag"] == t for r in rows) for t in ("switch", "switch_unanswerable")}
        print("wrote", path, tags)


if __name__ == "__main__":
    main()
