"""What a law's dated header lines say: which line enacts the text as it stands (公布, 发布, 通过, 修正, 修订)
and when the text entered into force (施行). One rule for ingest (Document.doc_date, ingest/parse.py) and for the
dates the library shows (/api/documents)."""

from __future__ import annotations

import re

from kb.schema import DatedEvent, Document


def enacting_lines(dates: list[DatedEvent]) -> list[DatedEvent]:
    """Every dated line but one that only says 施行 (a line that 公布/发布 and 施行 at once enacts too)."""
    return [d for d in dates if "施行" not in d.event or any(w in d.event for w in ("公布", "发布"))]


#: What a dated line of a law's header says was done, as the line's label: the first of these words in it
#: (「第一次修正」 → 修正, 「通过的《宪法修正案》」 → 修正, 「主席令第七十三号公布」 → 公布,
#: 「《关于修改……的决定》」 → 修正).
ENACTING_WORDS = {"修订": "修订", "修正": "修正", "修改": "修正", "公布": "公布", "发布": "发布", "通过": "通过"}
#: The sentence of a law's last articles that says when it enters into force: 「本条例自2022年5月1日起施行」.
IN_FORCE_RE = re.compile(r"本(?:法|条例|规定|办法|细则|决定)自\s*(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日起施行")


def labelled(date: str, event: str, label: str) -> dict:
    return {"date": date, "event": event, "label": label}


def enacting_label(event: str) -> str:
    return next((label for word, label in ENACTING_WORDS.items() if word in event), "日期")


def published_date(doc: Document) -> dict | None:
    """The latest dated line of the header that enacts the text as it stands (the one `date` is taken from: every
    line but one that only says 施行), labelled by its own word: 公布, 发布, 通过, 修正 or 修订."""
    enacting = enacting_lines(doc.dates)
    if not enacting:
        return None
    # The latest date; on one day (通过, then 公布 by 主席令), the word first in ENACTING_WORDS.
    order = [*ENACTING_WORDS.values(), "日期"]
    latest = max(enacting, key=lambda d: (d.date, -order.index(enacting_label(d.event))))
    return labelled(latest.date, latest.event, enacting_label(latest.event))


def effective_date(doc: Document, published: dict | None) -> dict | None:
    """When the text as it stands entered into force: a 施行 line of the header, or else the text's own
    「本法自……起施行」. Only a date on or after `published`: a revised law that still says 「本法自1999年1月1日起施行」
    (its first version's date) or 宪法's 「1982年12月4日 公布施行」 before its amendments gets none."""
    stated = [labelled(d.date, d.event, "施行") for d in doc.dates if "施行" in d.event]
    if not stated:
        found = list(IN_FORCE_RE.finditer(doc.text))
        if found:
            year, month, day = (int(g) for g in found[-1].groups())
            stated = [labelled(f"{year:04d}-{month:02d}-{day:02d}", found[-1].group(0), "施行")]
    current = [d for d in stated if published is None or d["date"] >= published["date"]]
    return max(current, key=lambda d: d["date"]) if current else None
