"""The store-neutral parts of search (no model): filters as both stores apply them, and the candidate pool."""

from __future__ import annotations

import numpy as np
import pytest

from kb.errors import QueryError
from kb.schema import Chunk, Document
from kb.stores.base import Filters, Pool
from kb.text.traits import TRAITS


def document(doc_id: str, kind: str, title: str, date: str | None) -> Document:
    return Document(doc_id, title, kind, f"{doc_id}.md", "hash", "", [], date)


DOCUMENTS = [document("a", "law", "信访工作条例", "2022-02-25"), document("b", "report", "雁石坪镇2024年报告", "2024"),
             document("c", "law", "人民调解法", "2010-08-28"), document("d", "other", "村规民约", None)]


def admitted(**raw: object) -> list[str]:
    filters = Filters.from_mapping(raw)
    return [d.doc_id for d in DOCUMENTS if filters.admits(d)]


def test_dates_are_compared_to_the_precision_both_have() -> None:
    assert admitted() == ["a", "b", "c", "d"]
    assert admitted(date_from="2022") == ["a", "b"]
    assert admitted(date_from="2022-03") == ["b"]  # the report's 2024 is after March 2022
    assert admitted(date_to="2022-02-25") == ["a", "c"]
    assert admitted(date_from="2011", date_to="2023-12-31") == ["a"]
    assert admitted(date_from="2024-06-01") == ["b"]  # a year matches any day of it
    assert admitted(doc_kind="law", date_from="2000") == ["a", "c"]
    assert admitted(date_to="2024-02-29") == ["a", "b", "c"], "a leap day is a real date"


@pytest.mark.parametrize("raw", [{"date_from": "2022/01/01"}, {"date_to": "22"}, {"date_from": 2022},
                                 {"when": "2022"}, {"doc_kind": "rule"}, "law",
                                 {"date_from": "2024-13-45"}, {"date_to": "2023-02-29"}, {"date_from": "2024-00"},
                                 {"date_from": "２０２４"}, {"date_to": "٢٠٢٤-٠١"}, {"doc_ids": ["a", "\ud800"]},
                                 {"doc_id": "b\udfff"}, {"title_contains": "\ud83d"}])
def test_bad_filters_are_the_callers_error(raw: object) -> None:
    with pytest.raises(QueryError):
        Filters.from_mapping(raw)


def test_the_pool_answers_by_position() -> None:
    chunks = [Chunk(f"a-{i}", "a" if i < 2 else "c", i, "", f"第{i + 1}条", i + 1, 0, 0, 1, "x") for i in range(3)]
    vectors = np.eye(3, dtype=np.float32)
    vectors[2, 2] = np.nan  # a damaged vector counts as no similarity
    traits = np.zeros((3, len(TRAITS)), dtype=bool)
    traits[1, TRAITS.index("list")] = True
    pool = Pool(chunks, vectors, np.array([1.0, 0.0, 2.0]), np.zeros(3), traits, ["x"])
    assert len(pool) == 3
    assert list(pool.cosines(np.array([0.0, 1.0, 0.0], dtype=np.float32))) == [0.0, 1.0, -1.0]
    assert list(pool.in_documents(["c"])) == [False, False, True]
    assert list(pool.of_articles([("a", 2), ("c", 9)])) == [False, True, False]
    assert list(pool.enumerates()) == [False, True, False]
