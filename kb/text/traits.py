"""What a passage contains — a period (日/月/年), an amount, a body, a rule, a definition, a list, a statement of
purpose — computed from its text in this one place, for every store.

The local store computes them when an index is loaded; the Milvus store keeps them as a bitmask per row, written
at ingest, so the base row also records TRAITS_VERSION: changing a pattern here changes the version, and a
Milvus knowledge base written under another one is refused with a message to re-ingest (kb/stores/milvus.py).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from kb.schema import Chunk

#: A list: 下列…, or several numbered items （一）（二）.
ENUMERATION_RE = re.compile(r"下列|[（(]一[）)][\s\S]*[（(]二[）)]")
_PERIOD = (r"[0-9０-９零〇一二两三四五六七八九十百]+\s*(?:个)?(?:日|天|月|年|周|小时|工作日)"
           r"(?:内|以内|之内|后|以上|以下|起)?")
_CONTAINS = {
    "period": re.compile(_PERIOD),
    "amount": re.compile(r"[0-9０-９零〇一二两三四五六七八九十百千万]+\s*(?:元|倍)|罚款|赔偿金|费用|收费|工资|报酬"),
    "body": re.compile(r"机关|部门|委员会|人民政府|人民法院|人民检察院|机构|组织"),
    "rule": re.compile(r"应当|不得|可以|有权|必须|禁止|无权"),
    "definition": re.compile(r"是指|所称|视为|包括"),
    "list": ENUMERATION_RE,
    "purpose": re.compile(r"为了[\s\S]{0,80}?制定本|根据[\s\S]{0,40}?制定本"),
}
TRAITS = tuple(_CONTAINS)


def traits_version(patterns: dict[str, re.Pattern[str]]) -> str:
    """A short name for a set of trait patterns: any change to a name, a pattern or their order changes it."""
    described = "\n".join(f"{name}={pattern.pattern}" for name, pattern in patterns.items())
    return hashlib.sha256(described.encode("utf-8")).hexdigest()[:16]


#: Names the patterns above: stores that keep traits record it, and a different one means re-ingest.
TRAITS_VERSION = traits_version(_CONTAINS)


def chunk_traits(chunks: list[Chunk]) -> np.ndarray:
    """(chunks × TRAITS) booleans: what each passage contains."""
    return np.array([[holds(t, c.text) for t in TRAITS] for c in chunks], dtype=bool).reshape(
        len(chunks), len(TRAITS))


def holds(trait: str, text: str) -> bool:
    """Whether `text` contains what a question asking for `trait` wants (a period, an amount, a body …)."""
    return bool(_CONTAINS[trait].search(text))


def enumerates(text: str) -> bool:
    """Does a passage list things (下列…, or several （一）（二） items)?"""
    return bool(ENUMERATION_RE.search(text))
