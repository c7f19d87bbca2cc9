"""Everyday words → the legal terms statutes use, so 「被公司辞退了」 also looks for 解除 and 劳动合同.

Citizens ask in plain words; laws are written in terms of art. The lexical retriever cannot bridge that gap
on its own, so the question is expanded with the terms below before BM25 scoring (and, per
`Settings.expand_dense`, before embedding the dense query).

How the list was chosen: only entries with evidence on training questions are kept. `bench/expansion_evidence.py`
counts, over STARD's train split (and, as a second source, `../shared/eval/stard_local_train.jsonl`), the
questions that contain each everyday phrase (n) and how many of them have a gold article containing the legal
term (hits, precision = hits / n), against the share of all train questions whose gold articles contain the term
(base; lift = precision / base). A term is kept when n >= 3, hits >= 2, precision >= 0.3 and lift >= 2
(thresholds fixed before the first run); an entry keeps only its supported terms. No dev set is read. The
earlier hand-written list (80 entries) is kept in that script as its candidates; 75 of them had no such
evidence (most never occur in a train question) and were dropped. `python -m bench.expansion_evidence`
reproduces this list and writes bench/results/expansion_evidence.json, whose "supported" mapping the tests
compare with this one.
"""

from __future__ import annotations

from collections.abc import Mapping

EVERYDAY_TO_LEGAL: dict[str, str] = {
    "租房": "租赁",  # stard_train: n=3, hits=2
    "辞退": "解除 劳动合同",  # stard_train: n=4, hits=4 for both
    "偷": "盗窃",  # stard_train: n=11, hits=8
    "法院": "人民法院",  # stard_train: n=19, hits=12
    "政府": "行政机关",  # stard_train: n=18, hits=11 (人民政府 was dropped: precision 0.22)
}

_BY_LENGTH = sorted(EVERYDAY_TO_LEGAL, key=len, reverse=True)


def legal_terms(question: str, table: Mapping[str, str] | None = None) -> list[str]:
    """The legal terms the question's everyday words stand for (longest phrase first, no repeats).

    A phrase found inside a longer phrase that already matched does not count again. `table` replaces
    EVERYDAY_TO_LEGAL (for tests).
    """
    table = EVERYDAY_TO_LEGAL if table is None else table
    by_length = _BY_LENGTH if table is EVERYDAY_TO_LEGAL else sorted(table, key=len, reverse=True)
    remaining, terms = question, []
    for phrase in by_length:
        if phrase in remaining:
            remaining = remaining.replace(phrase, "\0")
            terms += [t for t in table[phrase].split() if t not in terms]
    return terms


def expand_query(question: str) -> str:
    """The question followed by its legal terms, for the lexical retriever."""
    terms = legal_terms(question)
    return f"{question} {' '.join(terms)}" if terms else question
