"""The question bank: check it, see its coverage, and keep its held-out articles apart.

    python -m bench.question_bank check [FILE ...]   check the sidecars in corpus/ (or the given writer files)
    python -m bench.question_bank asked              rewrite bench/data/asked_articles.json from STARD train
    python -m bench.question_bank merge FILE ...     writer files → corpus/*.questions.jsonl + the held-out file

Writer files are JSONL rows of a sidecar plus "doc" (the document's file stem, e.g. 民法典). Checks:
every gold article exists; no run of 4+ characters copied from the gold article except names (laws, bodies,
contract types); no near-duplicates (character-bigram Jaccard ≥ 0.75 among one article's questions, or the
same text anywhere); none resembling a question of ../shared/eval (Jaccard ≥ 0.6: the bank must not copy or
paraphrase evaluation questions, nor the training questions the handle stage learns from); coverage per document and per article against the minimum (3, or 6 for the articles
people ask about). A fixed 15 % of articles, chosen by a hash of document and number, keep their questions in
bench/data/question_bank_heldout.jsonl, out of every sidecar, handle and training set: measuring on them shows
what a model learnt beyond the bank.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.common import SHARED
from ingest.chunk import chunk_document
from ingest.parse import parse_document
from ingest.questions import SIDECAR_SUFFIX, AttachedQuestion, SidecarError, attach, parse_question, read_sidecar
from kb.config import PROJECT_ROOT
from kb.evaluate import GoldQuestion
from kb.schema import Chunk

CORPUS = PROJECT_ROOT / "corpus"
DATA = PROJECT_ROOT / "bench" / "data"
HELDOUT_FILE = DATA / "question_bank_heldout.jsonl"
ASKED_FILE = DATA / "asked_articles.json"
HELDOUT_PER_MILLE = 150
MIN_QUESTIONS, MIN_QUESTIONS_ASKED = 3, 6
COPY_RUN = 4
NEAR_DUPLICATE = 0.75
LIKE_EVALUATION = 0.6
#: Parts people ask about: every article of these documents, and these article ranges of 民法典.
ASKED_DOCUMENTS = ("信访工作条例", "农村土地承包法", "治安管理处罚法", "反家庭暴力法", "未成年人保护法", "妇女权益保障法",
                   "消费者权益保护法", "预防未成年人犯罪法")
ASKED_CIVIL_CODE_RANGES = ((205, 462), (463, 988), (1040, 1118), (1119, 1163), (1164, 1258))  # 物权 合同 婚姻 继承 侵权
_NAME_RE = re.compile(r"[\u4e00-\u9fff]{0,4}(?:合同|委员会|人民法院|人民检察院|人民政府|公安机关|协会|联合会|法律援助机构"
                      r"|信访工作机构)|[\u4e00-\u9fff]{2,12}(?:法|条例)")
_KEEP_RE = re.compile(r"[^\u4e00-\u9fff0-9A-Za-z]")


def held_out_bank() -> list[GoldQuestion]:
    """The bank's held-out articles' questions, as gold questions (document stem → title match)."""
    if not HELDOUT_FILE.is_file():
        return []
    rows = [json.loads(line) for line in HELDOUT_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [GoldQuestion(id=f"bank{i}", q=r["q"], tag="bank_heldout", answerable=True, doc=r["doc"],
                         articles=tuple(r.get("articles", ())),
                         contains=(r["contains"],) if r.get("contains") else ())
            for i, r in enumerate(rows)]


@dataclass
class Article:
    stem: str
    number: int | None  # None for a passage of text without articles
    text: str


def corpus_chunks(corpus: Path = CORPUS) -> dict[str, tuple[str, list[Chunk]]]:
    """file stem → (file name, chunks), parsed and chunked exactly as ingest does, without embedding."""
    out = {}
    for path in sorted(corpus.iterdir()):
        if path.suffix not in (".md", ".txt") or path.name in ("SOURCES.md", "README.md"):
            continue
        parsed = parse_document(path.read_text(encoding="utf-8"), path.name, path.suffix == ".md")
        out[path.stem] = (path.name, chunk_document(parsed))
    return out


def article_texts(chunks: list[Chunk]) -> dict[int, str]:
    texts: dict[int, str] = defaultdict(str)
    for chunk in chunks:
        if chunk.article_no is not None:
            texts[chunk.article_no] += chunk.text
    return dict(texts)


def is_held_out(stem: str, article: int) -> bool:
    digest = hashlib.sha256(f"{stem}:{article}".encode()).hexdigest()
    return int(digest[:8], 16) % 1000 < HELDOUT_PER_MILLE


def asked_articles() -> dict[str, list[int]]:
    """The articles people ask about: the listed parts, plus every article STARD's train questions cite."""
    if ASKED_FILE.is_file():
        return {k: v for k, v in json.loads(ASKED_FILE.read_text(encoding="utf-8")).items()}
    return {}


def write_asked_articles() -> None:
    stems = {stem: article_texts(chunks) for stem, (_, chunks) in corpus_chunks().items()}
    asked: dict[str, set[int]] = {stem: set(arts) for stem, arts in stems.items() if stem in ASKED_DOCUMENTS}
    asked["民法典"] = {n for lo, hi in ASKED_CIVIL_CODE_RANGES for n in range(lo, hi + 1)}
    queries = SHARED / "bench" / "stard" / "queries.jsonl"
    if not queries.is_file():
        sys.exit(f"{queries} is missing")
    from kb.text.numerals import parse_chinese_number

    for line in queries.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("split") != "train":
            continue
        for gold in row["gold"]:
            match = re.fullmatch(r"(.+?)第([零一二三四五六七八九十百千]+)条", gold)
            if match and match[1] in stems:
                number = parse_chinese_number(match[2])
                if number in stems[match[1]]:
                    asked.setdefault(match[1], set()).add(number)
    ASKED_FILE.write_text(json.dumps({k: sorted(v) for k, v in sorted(asked.items())}, ensure_ascii=False) + "\n",
                          encoding="utf-8")
    print(f"{ASKED_FILE}: {sum(len(v) for v in asked.values())} articles in {len(asked)} documents")


def copied_runs(question: str, source: str) -> list[str]:
    """Runs of COPY_RUN+ characters of the question found verbatim in the source, names excepted."""
    text = _KEEP_RE.sub("", _NAME_RE.sub("|", question))
    runs, i = [], 0
    while i <= len(text) - COPY_RUN:
        j = i + COPY_RUN
        if text[i:j] not in source:
            i += 1
            continue
        while j < len(text) and text[i:j + 1] in source:
            j += 1
        runs.append(text[i:j])
        i = j
    return runs


def _bigrams(text: str) -> set[str]:
    text = _KEEP_RE.sub("", text)
    return {text[i:i + 2] for i in range(len(text) - 1)}


def near_duplicates(questions: list[str]) -> list[tuple[str, str]]:
    grams = [_bigrams(q) for q in questions]
    pairs = []
    for i in range(len(questions)):
        for j in range(i + 1, len(questions)):
            union = grams[i] | grams[j]
            if union and len(grams[i] & grams[j]) / len(union) >= NEAR_DUPLICATE:
                pairs.append((questions[i], questions[j]))
    return pairs


def evaluation_questions() -> list[tuple[str, set[str]]]:
    """(file, bigrams) of every question of ../shared/eval (none when it is absent)."""
    out = []
    for path in sorted((SHARED / "eval").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append((f"{path.name}: {json.loads(line)['q']}", _bigrams(json.loads(line)["q"])))
    return out


def like_evaluation(questions: list[str]) -> list[str]:
    known = evaluation_questions()
    found = []
    for question in questions:
        grams = _bigrams(question)
        for name, other in known:
            union = grams | other
            if union and len(grams & other) / len(union) >= LIKE_EVALUATION:
                found.append(f"{question}  ≈ {name}")
                break
    return found


def read_rows(files: list[Path]) -> tuple[list[tuple[str, AttachedQuestion]], list[str]]:
    """(document stem, question) for every line of writer files (with "doc") or sidecars (stem from name)."""
    rows, errors = [], []
    for path in files:
        if path.name.endswith(SIDECAR_SUFFIX):
            stem = path.name[:-len(SIDECAR_SUFFIX)]
            questions, problems = read_sidecar(path)
            rows += [(stem, q) for q in questions]
            errors += [str(p) for p in problems]
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                raw = json.loads(line)
                question = parse_question(raw, where)
            except (json.JSONDecodeError, SidecarError) as exc:
                errors.append(f"{where}: {exc}")
                continue
            rows.append((str(raw.get("doc", "")), AttachedQuestion(question.question, question.articles,
                                                                   question.contains, question.form, number)))
    return rows, errors


def check(files: list[Path], coverage: bool) -> int:
    corpus = corpus_chunks()
    rows, errors = read_rows(files)
    by_key: dict[tuple[str, int | str], list[str]] = defaultdict(list)
    copies, seen = [], Counter(q.question for _, q in rows)
    for stem, question in rows:
        if stem not in corpus:
            errors.append(f"line {question.line}: no document named {stem!r} in corpus/")
            continue
        name, chunks = corpus[stem]
        attached, problems = attach([question], chunks, name)
        errors += [str(p) for p in problems]
        for _, found in attached:
            source = _KEEP_RE.sub("", "".join(c.text for c in found))
            runs = copied_runs(question.question, source)
            if runs:
                copies.append(f"{stem} {question.articles or question.contains}: {question.question}  ← {runs}")
            for key in question.articles or (question.contains,):
                by_key[(stem, key)].append(question.question)
    duplicates = [f"same text {n}×: {q}" for q, n in seen.items() if n > 1]
    for (stem, key), questions in by_key.items():
        duplicates += [f"{stem} {key}: {a} ≈ {b}" for a, b in near_duplicates(questions)]
    resembling = like_evaluation([q.question for _, q in rows])
    for title, problems in (("errors", errors), ("copied runs", copies), ("near-duplicates", duplicates),
                            ("like evaluation questions", resembling)):
        print(f"{len(problems)} {title}")
        for problem in problems[:200]:
            print("  ", problem)
    if coverage:
        _print_coverage(corpus, by_key)
    return 1 if errors or copies or duplicates or resembling else 0


def _print_coverage(corpus: dict[str, tuple[str, list[Chunk]]], by_key: dict) -> None:
    asked = {stem: set(v) for stem, v in asked_articles().items()}
    print(f"\n{'document':<16} {'articles':>8} {'questions':>9} {'below minimum':>14}")
    for stem, (_, chunks) in corpus.items():
        numbers: list[int | str] = list(sorted(article_texts(chunks)))
        if not numbers:  # text without articles: its passages, by the snippets questions name
            numbers = [c.chunk_id for c in chunks]
            keyed = {c.chunk_id: [q for (s, key), qs in by_key.items() if s == stem and isinstance(key, str)
                                  and key in c.text for q in qs] for c in chunks}
            counts = [len(keyed[n]) for n in numbers]
        else:
            counts = [len(by_key.get((stem, n), [])) for n in numbers]
        short = [n for n, c in zip(numbers, counts) if c < (MIN_QUESTIONS_ASKED if n in asked.get(stem, ())
                                                          else MIN_QUESTIONS)]
        print(f"{stem:<16} {len(numbers):>8} {sum(counts):>9} {len(short):>14}  {short[:12]}")


def merge(files: list[Path]) -> None:
    """Writer files → one sidecar per document (replacing it) and the held-out articles' file."""
    rows, errors = read_rows(files)
    if errors:
        sys.exit("\n".join(errors))
    sidecars: dict[str, list[dict]] = defaultdict(list)
    held_out = []
    for stem, question in rows:
        if question.articles and any(is_held_out(stem, n) for n in question.articles):
            held_out.append({"doc": stem, **question.to_json()})
        else:
            sidecars[stem].append(question.to_json())
    for stem, questions in sidecars.items():
        (CORPUS / f"{stem}{SIDECAR_SUFFIX}").write_text(
            "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    HELDOUT_FILE.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in held_out), encoding="utf-8")
    print(f"{sum(map(len, sidecars.values()))} questions in {len(sidecars)} sidecars, {len(held_out)} held out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("check", "asked", "merge"))
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_args()
    if args.command == "asked":
        write_asked_articles()
    elif args.command == "merge":
        merge(args.files)
    else:
        files = args.files or sorted(CORPUS.glob(f"*{SIDECAR_SUFFIX}")) + ([HELDOUT_FILE] if HELDOUT_FILE.is_file()
                                                                           else [])
        sys.exit(check(files, coverage=not args.files or len(args.files) > 1))


if __name__ == "__main__":
    main()
