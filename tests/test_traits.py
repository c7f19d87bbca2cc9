"""What a passage contains is computed in one place (kb/text/traits.py), and a store that keeps it written down
(Milvus, as a bitmask per row) records which patterns wrote it: rows written under other patterns are refused
with a message to re-ingest, never read as if they meant today's traits."""

from __future__ import annotations

import json
import re

import pytest

from kb.errors import IndexMismatchError
from kb.schema import Chunk
from kb.stores.milvus import LAYOUT, MilvusStore, same_layout
from kb.text import traits
from kb.text.traits import TRAITS, TRAITS_VERSION, chunk_traits, traits_version


def chunk(text: str) -> Chunk:
    return Chunk(chunk_id="c", doc_id="d", seq=0, section="", article=None, article_no=None, part=0,
                 text=text, start=0, end=len(text))


def test_traits_are_read_from_the_text() -> None:
    rows = chunk_traits([chunk("行政机关应当在六十日内作出决定。"), chunk("为了保护未成年人，制定本法。")])
    held = [{name for name, on in zip(TRAITS, row) if on} for row in rows]
    assert held == [{"period", "body", "rule"}, {"purpose"}]


def test_changing_a_pattern_changes_the_version() -> None:
    patterns = dict(traits._CONTAINS)
    assert traits_version(patterns) == TRAITS_VERSION
    patterns["period"] = re.compile(patterns["period"].pattern + "|旬")
    assert traits_version(patterns) != TRAITS_VERSION
    assert traits_version(dict(reversed(list(traits._CONTAINS.items())))) != TRAITS_VERSION  # order is the bitmask


class BaseRowClient:
    """A MilvusClient stand-in whose records collection holds one base row."""

    def __init__(self, base: dict) -> None:
        self.base = base

    def has_collection(self, collection: str) -> bool:
        return True

    def query(self, collection: str, **_: object) -> list[dict]:
        return [{"body": json.dumps(self.base)}]


def test_milvus_rows_written_under_other_trait_patterns_are_refused() -> None:
    written_today = {**LAYOUT, "generation": "1"}
    assert same_layout(written_today)
    assert MilvusStore(BaseRowClient(written_today), "town", "http://127.0.0.1:19530").checked_base() == written_today
    older = {**written_today, "traits_version": "0" * 16}
    assert not same_layout(older)
    with pytest.raises(IndexMismatchError, match=r"kb ingest --kb town"):
        MilvusStore(BaseRowClient(older), "town", "http://127.0.0.1:19530").checked_base()
