"""Evidence for kb.search.expand: does each everyday phrase → legal term of the expansion list hold on training questions?

    python -m bench.expansion_evidence      # prints the table, writes bench/results/expansion_evidence.json

For every candidate entry (the list as it stood before this check, `CANDIDATES`, plus anything added to
`kb.search.expand.EVERYDAY_TO_LEGAL` since) and every legal term of that entry, over a set of training questions
with gold articles:

- n         = questions whose text contains the phrase (plain substring, as kb.search.expand matches it);
- hits      = of those n, questions with at least one gold article whose text contains the term;
- precision = hits / n;
- base      = share of *all* questions of the set with at least one gold article containing the term;
- lift      = precision / base.

A term is supported by a set when, all at once (thresholds fixed before the first run, not tuned to keep
any entry):

    n >= 3   and   hits >= 2   and   precision >= 0.3   and   lift >= 2

(hits >= 2 because a term backed by one question is exactly the "written from a single question" case).
An entry keeps only its supported terms; an entry with none is dropped. Training sets, in order:

1. `stard_train`: STARD's train split (`bench.stard.load_queries("train", None)`), gold article texts from
   STARD's `corpus.jsonl`.
2. `stard_local_train`: `../shared/eval/stard_local_train.jsonl`, gold article texts from `corpus/*.md`.
   (These are STARD train questions too, answered from the default corpus, so they rarely add support.)
3. `team_train_local`: `bench/data/train_local.jsonl`, the 信访 and law training questions the team wrote from
   the documents (STARD has none about 信访), gold article texts from `corpus/*.md`.

No dev set is read: not `../shared/eval/dev.jsonl`, not `stard_local_dev.jsonl`, and the STARD questions of
split `dev` are dropped by `load_queries` before anything is counted. `kb.search.expand.EVERYDAY_TO_LEGAL` is the
"supported" mapping of the JSON this writes; tests/test_expand.py checks that it does not drift from it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from bench.common import SHARED, write_result
from kb.config import PROJECT_ROOT
from kb.text.numerals import parse_chinese_number

MIN_QUESTIONS = 3
MIN_HITS = 2
MIN_PRECISION = 0.3
MIN_LIFT = 2.0

#: The expansion list as it stood before this evidence check (kb/search/expand.py at commit 701b3a1), kept here so
#: that the dropped entries stay on record and the check can be rerun from scratch.
CANDIDATES: dict[str, str] = {
    # family
    "老公": "丈夫 夫妻", "老婆": "妻子 夫妻", "媳妇": "妻子 夫妻", "两口子": "夫妻", "丈夫": "夫妻", "妻子": "夫妻",
    "孩子": "子女 未成年人", "小孩": "子女 未成年人", "儿子": "子女", "女儿": "子女", "娃": "子女",
    "爸妈": "父母", "爸爸": "父母", "妈妈": "父母", "爷爷": "祖父母", "奶奶": "祖父母",
    "老人": "老年人 赡养", "养老": "赡养", "分家产": "遗产 继承", "家产": "遗产", "去世": "死亡 继承",
    "死了": "死亡", "亲手写": "自书 亲笔书写", "自己写": "自书 亲笔书写", "打老婆": "家庭暴力", "家暴": "家庭暴力",
    "离婚": "离婚 婚姻", "结婚": "结婚 婚姻", "生孩子": "生育",
    # money and property
    "借钱": "借款 债务", "借的钱": "借款 债务", "欠钱": "债务 借款", "还钱": "偿还 债务", "赔钱": "赔偿",
    "房子": "房屋", "买房": "购买 房屋", "租给": "出租 租赁 流转", "租出去": "出租 租赁 流转", "租房": "租赁 房屋",
    "工资": "劳动报酬 工资", "老板": "用人单位", "打工": "劳动者", "开除": "解除 劳动合同", "辞退": "解除 劳动合同",
    # consumers
    "买东西": "消费者 购买 商品", "商家": "经营者", "卖家": "经营者", "店家": "经营者", "假货": "假冒 欺诈",
    # wrongdoing and penalties
    "打人": "殴打 伤害", "打架": "斗殴 殴打", "骂人": "侮辱", "偷东西": "盗窃", "偷": "盗窃", "骗钱": "诈骗",
    "喝醉": "醉酒", "闹事": "扰乱 秩序", "罚钱": "罚款", "坐牢": "拘留 刑罚", "抓起来": "拘留",
    # authorities and remedies
    "警察": "公安机关", "派出所": "公安机关", "法院": "人民法院", "打官司": "诉讼 起诉", "告状": "起诉 控告",
    "告他": "起诉", "政府": "行政机关 人民政府", "当官的": "国家工作人员", "村里": "村民委员会 村",
    "村委会": "村民委员会", "居委会": "居民委员会", "上访": "信访", "反映问题": "信访", "举报": "检举 控告",
    "请不起律师": "法律援助", "没钱请律师": "法律援助", "网上": "互联网 网络", "不服": "复议 诉讼",
    "查信息": "政府信息公开", "公开信息": "政府信息公开",
}

LOCAL_TRAIN = SHARED / "eval" / "stard_local_train.jsonl"
TEAM_TRAIN = PROJECT_ROOT / "bench" / "data" / "train_local.jsonl"
CORPUS_DIR = PROJECT_ROOT / "corpus"
_ARTICLE_START = re.compile(r"^第([零〇一二两三四五六七八九十百千万]+|[0-9０-９]+)条")

#: One training question: its text and the texts of its gold articles.
Question = tuple[str, list[str]]


def stard_train() -> list[Question]:
    from bench.stard import STARD, load_queries

    queries = load_queries("train", None)
    wanted = {g for q in queries for g in q["gold"]}
    texts: dict[str, str] = {}
    with (STARD / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            article = json.loads(line)
            if article["id"] in wanted:
                texts[article["id"]] = article["text"]
    return [(q["text"], [texts[g] for g in q["gold"] if g in texts]) for q in queries]


def _law_articles(doc: str) -> dict[int, str]:
    """Article number → text (all its paragraphs) of the corpus law whose file or title contains `doc`."""
    paths = [CORPUS_DIR / f"{doc}.md"] if (CORPUS_DIR / f"{doc}.md").is_file() else [
        p for p in sorted(CORPUS_DIR.glob("*.md")) if doc in p.read_text(encoding="utf-8").split("\n", 1)[0]]
    if not paths:
        raise FileNotFoundError(f"no corpus law for {doc!r}")
    articles: dict[int, list[str]] = {}
    current: int | None = None
    for line in paths[0].read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("#") or line == "<!-- INFO END -->":
            current = None  # headings (and 民法典's repeated part headers) end an article
            continue
        match = _ARTICLE_START.match(line)
        if match:
            current = parse_chinese_number(match.group(1))
            articles.setdefault(current, [])
        if current is not None and line:
            articles[current].append(line)
    return {n: "\n".join(parts) for n, parts in articles.items()}


def local_questions(path: Path) -> list[Question]:
    """Questions over corpus/ with gold article numbers (questions without articles are left out)."""
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    laws: dict[str, dict[int, str]] = {}
    out = []
    for row in rows:
        if not row.get("answerable", True) or not row.get("articles"):
            continue
        articles = laws.setdefault(row["doc"], _law_articles(row["doc"]))
        out.append((row["q"], [articles[n] for n in row["articles"] if n in articles]))
    return out


def term_stats(questions: list[Question], phrase: str, term: str, base_cache: dict[str, float]) -> dict:
    if term not in base_cache:
        base_cache[term] = sum(any(term in t for t in gold) for _, gold in questions) / len(questions)
    base = base_cache[term]
    matched = [gold for text, gold in questions if phrase in text]
    hits = sum(any(term in t for t in gold) for gold in matched)
    precision = hits / len(matched) if matched else 0.0
    lift = precision / base if base else None
    supported = (len(matched) >= MIN_QUESTIONS and hits >= MIN_HITS and precision >= MIN_PRECISION
                 and lift is not None and lift >= MIN_LIFT)
    return {"n": len(matched), "hits": hits, "precision": round(precision, 3), "base": round(base, 4),
            "lift": None if lift is None else round(lift, 2), "supported": supported}


def evaluate(entries: dict[str, str], sources: dict[str, list[Question]]) -> dict[str, dict]:
    caches: dict[str, dict[str, float]] = {name: {} for name in sources}
    report = {}
    for phrase, terms in entries.items():
        per_term = {}
        for term in terms.split():
            stats = {name: term_stats(qs, phrase, term, caches[name]) for name, qs in sources.items()}
            source = next((name for name, s in stats.items() if s["supported"]), None)
            per_term[term] = {**stats, "supported_by": source}
        kept = [t for t, s in per_term.items() if s["supported_by"]]
        report[phrase] = {"terms": per_term, "kept": " ".join(kept)}
    return report


def _fmt(stats: dict) -> str:
    lift = "-" if stats["lift"] is None else f"{stats['lift']:.1f}"
    return f"{stats['n']:>4} {stats['hits']:>4} {stats['precision']:>5.2f} {stats['base']:>6.3f} {lift:>5}"


def print_table(report: dict[str, dict], names: Iterable[str]) -> None:
    names = list(names)
    head = "".join(f" | {name:^28}" for name in names)
    print(f"{'phrase':<8}{'term':<10}{head} | decision")
    print(f"{'':<18}" + "".join(f" | {'n':>4} {'hits':>4} {'prec':>5} {'base':>6} {'lift':>5}" for _ in names))
    for phrase, entry in report.items():
        for term, stats in entry["terms"].items():
            cells = "".join(f" | {_fmt(stats[name])}" for name in names)
            decision = f"keep ({stats['supported_by']})" if stats["supported_by"] else "drop"
            print(f"{phrase:<8}{term:<10}{cells} | {decision}")


def main() -> int:
    from kb.search.expand import EVERYDAY_TO_LEGAL

    if not (SHARED / "bench" / "stard").is_dir():
        print("skipped: ../shared/bench/stard not found")
        return 0
    sources = {"stard_train": stard_train()}
    for name, path in (("stard_local_train", LOCAL_TRAIN), ("team_train_local", TEAM_TRAIN)):
        if path.is_file():
            sources[name] = local_questions(path)
    entries = dict(CANDIDATES)
    for phrase, terms in EVERYDAY_TO_LEGAL.items():  # entries added after the check was written are checked too
        known = entries.get(phrase, "").split()
        entries[phrase] = " ".join(known + [t for t in terms.split() if t not in known])
    report = evaluate(entries, sources)
    print_table(report, sources)
    supported = {phrase: e["kept"] for phrase, e in report.items() if e["kept"]}
    dropped = [phrase for phrase, e in report.items() if not e["kept"]]
    terms_total = sum(len(e["terms"]) for e in report.values())
    terms_kept = sum(len(k.split()) for k in supported.values())
    figures = {
        "thresholds": {"min_questions": MIN_QUESTIONS, "min_hits": MIN_HITS, "min_precision": MIN_PRECISION,
                       "min_lift": MIN_LIFT},
        "sources": {name: {"questions": len(qs)} for name, qs in sources.items()},
        "summary": {"entries": len(report), "entries_kept": len(supported), "entries_dropped": len(dropped),
                    "terms": terms_total, "terms_kept": terms_kept, "terms_dropped": terms_total - terms_kept},
        "supported": supported,
        "dropped": dropped,
        "entries": report,
    }
    path = write_result("expansion_evidence", figures)
    print(f"\n{figures['summary']}\nsources: {figures['sources']}\ndropped: {' '.join(dropped)}")
    if supported != EVERYDAY_TO_LEGAL:
        print("kb.search.expand.EVERYDAY_TO_LEGAL differs from the supported mapping; it should be:")
        print(json.dumps(supported, ensure_ascii=False))
    print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
