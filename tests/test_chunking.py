"""Parsing and chunking of every corpus file, checked against corpus/SOURCES.md; no model needed."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import docx
import pytest
from conftest import CORPUS_DIR, CORPUS_FILES, corpus_sources

from ingest.chunk import SECTION_SEPARATOR, chunk_document
from ingest.parse import ParsedDocument, parse_document
from ingest.read import read_source
from kb.config import Settings
from kb.schema import Chunk

MAX_CHARS = Settings.max_chunk_chars
TARGET = Settings.report_chunk_chars
LAW_FILES = [name for name in CORPUS_FILES if name.endswith(".md")]
REPORT_FILE = "雁石坪镇2024年法治政府建设情况报告.txt"
ITEM_RE = re.compile(r"(?:^|(?<=[。；;！？]))([一二三四五六七八九十]+)是")


@functools.cache
def parsed(name: str) -> tuple[ParsedDocument, tuple[Chunk, ...]]:
    path = CORPUS_DIR / name
    doc = parse_document(read_source(path).text, name, path.suffix == ".md")
    return doc, tuple(chunk_document(doc, MAX_CHARS, TARGET))


def chunk_by_article(name: str, article_no: int) -> Chunk:
    matches = [c for c in parsed(name)[1] if c.article_no == article_no]
    assert len(matches) == 1, f"{name} 第{article_no}条: {len(matches)} chunks"
    return matches[0]


def test_corpus_has_the_documented_files() -> None:
    """What an ingest of corpus/ indexes is exactly what SOURCES.md's table documents, one row per file."""
    assert CORPUS_FILES, "no corpus files found"
    assert len(set(CORPUS_FILES)) == len(CORPUS_FILES)
    assert sorted(CORPUS_FILES) == sorted(corpus_sources())
    assert all((CORPUS_DIR / name).is_file() for name in corpus_sources())


# --- article numbering ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LAW_FILES)
def test_articles_run_1_to_n_in_order(name: str) -> None:
    expected = corpus_sources()[name].expected_articles
    assert expected
    numbers = [c.article_no for c in parsed(name)[1] if c.article_no is not None]
    assert set(numbers) == set(range(1, expected + 1))
    assert numbers == sorted(numbers)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_article_labels_agree_with_numbers(name: str) -> None:
    for chunk in parsed(name)[1]:
        if chunk.article_no is None:
            assert chunk.article is None and chunk.part == 0
        else:
            assert chunk.part > 0 or chunk.text.startswith(chunk.article), chunk.chunk_id


# --- spans and coverage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_spans_exact_ordered_non_overlapping(name: str) -> None:
    doc, chunks = parsed(name)
    text = doc.document.text
    assert chunks
    previous_end = 0
    for seq, chunk in enumerate(chunks):
        assert chunk.seq == seq
        assert chunk.doc_id == doc.document.doc_id
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.start < chunk.end
        assert chunk.start >= previous_end
        assert chunk.text.strip() == chunk.text, "chunks start and end on text, not whitespace"
        previous_end = chunk.end
    assert len({c.chunk_id for c in chunks}) == len(chunks)


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_chunks_cover_every_paragraph_character_once(name: str) -> None:
    doc, chunks = parsed(name)
    text = doc.document.text
    owner = [0] * len(text)  # how many chunks hold each character
    for chunk in chunks:
        for i in range(chunk.start, chunk.end):
            owner[i] += 1
    in_para = [False] * len(text)
    for block in doc.blocks:
        if block.kind == "para":
            for i in range(block.start, block.end):
                in_para[i] = True
                if not text[i].isspace():
                    assert owner[i] == 1, f"paragraph character {i} ({text[i]!r}) is in {owner[i]} chunks"
    for i, count in enumerate(owner):
        if count and not in_para[i]:
            assert text[i].isspace(), f"character {i} ({text[i]!r}) outside paragraphs is in a chunk"


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_headings_and_header_lines_are_never_chunked(name: str) -> None:
    doc, chunks = parsed(name)
    outside = [b for b in doc.blocks if b.kind in ("heading", "meta")]
    assert outside, "every corpus file has a title"
    for block in outside:
        for chunk in chunks:
            assert block.end <= chunk.start or chunk.end <= block.start, (block, chunk.chunk_id)


def test_markup_comments_are_not_chunks() -> None:
    markup = [c.text for c in parsed("宪法.md")[1] if c.text.startswith("<!--")]
    assert markup == []


# --- sections --------------------------------------------------------------------------------------------------


def test_xinfang_article_34_section() -> None:
    chunk = chunk_by_article("信访工作条例.md", 34)
    assert chunk.article == "第三十四条"
    assert chunk.section == "第四章 信访事项的办理"
    assert "自受理之日起60日内办结" in chunk.text


def test_civil_code_section_paths_follow_its_parts() -> None:
    _, chunks = parsed("民法典.md")
    # 物权编 is 第二百零五条 to 第四百六十二条; 继承编 is 第一千一百一十九条 to 第一千一百六十三条.
    assert chunk_by_article("民法典.md", 205).section == SECTION_SEPARATOR.join(["物权编", "第一分编 通则", "第一章 一般规定"])
    assert chunk_by_article("民法典.md", 1134).section.startswith("继承编" + SECTION_SEPARATOR)
    assert "自书遗嘱" in chunk_by_article("民法典.md", 1134).text
    for chunk in chunks:
        if 205 <= chunk.article_no <= 462:
            assert chunk.section.startswith("物权编" + SECTION_SEPARATOR), (chunk.article, chunk.section)
    assert chunk_by_article("民法典.md", 1).section == SECTION_SEPARATOR.join(["总则", "第一章 基本规定"])


def test_section_headings_are_cleaned() -> None:
    """`### 第二节  监  护` in 民法典 becomes `第二节 监护`."""
    sections = {c.section for c in parsed("民法典.md")[1]}
    assert any(s.endswith("第二章 自然人" + SECTION_SEPARATOR + "第二节 监护") for s in sections)
    assert not any("  " in s for s in sections)


def test_report_chunks_are_labelled_with_headings_and_keep_items_apart() -> None:
    doc, chunks = parsed(REPORT_FILE)
    assert doc.document.kind == "report"
    assert all(c.article is None and c.article_no is None for c in chunks)
    headings = [b.label for b in doc.blocks if b.kind == "heading"]
    assert headings == ["一、工作开展情况", "二、存在问题", "三、下一步工作计划"]
    body = [c for c in chunks if c.section]
    assert len(body) == len(chunks) - 1  # only the opening paragraph comes before the first heading
    for chunk in chunks:
        items = ITEM_RE.findall(chunk.text)
        assert len(items) <= 1, f"chunk mixes items {items}: {chunk.text[:40]}"
        if chunk.section:
            assert chunk.section.split(SECTION_SEPARATOR)[0] in headings
        if items:  # an item's chunk is labelled with the item
            assert chunk.section.split(SECTION_SEPARATOR)[-1].startswith(items[0] + "是")
    first = next(c for c in chunks if "成立以镇党委书记为组长" in c.text)
    assert first.section.startswith("一、工作开展情况" + SECTION_SEPARATOR + "（一）加强组织领导")
    assert first.section.endswith("一是成立以镇党委书记为组长、镇长为副组长的法治政")
    petition = next(c for c in chunks if "2024年无信访案件" in c.text)
    assert petition.section.startswith("一、工作开展情况" + SECTION_SEPARATOR + "（四）完善法律服务")
    problems = [c for c in chunks if c.section.startswith("二、存在问题")]
    assert len(problems) == 3


def test_report_chunks_stay_near_target_size() -> None:
    _, chunks = parsed(REPORT_FILE)
    assert max(len(c.text) for c in chunks) <= 2 * TARGET


# --- long articles --------------------------------------------------------------------------------------------


def _split_articles() -> dict[tuple[str, int], list[Chunk]]:
    groups: dict[tuple[str, int], list[Chunk]] = {}
    for name in LAW_FILES:
        for chunk in parsed(name)[1]:
            if chunk.part:
                groups.setdefault((name, chunk.article_no), []).append(chunk)
    return groups


def test_long_articles_are_split_at_paragraph_boundaries() -> None:
    groups = _split_articles()
    assert ("宪法.md", 67) in groups and ("宪法.md", 89) in groups  # 全国人大常委会 / 国务院 的职权
    for (name, article_no), parts in groups.items():
        doc, chunks = parsed(name)
        whole = [c for c in chunks if c.article_no == article_no]
        assert whole == parts, "every chunk of a split article is a part"
        assert [p.part for p in parts] == list(range(1, len(parts) + 1))
        assert len(parts) >= 2
        assert all(p.article == parts[0].article and p.section == parts[0].section for p in parts)
        assert parts[0].text.startswith(parts[0].article)
        assert parts[-1].end - parts[0].start > MAX_CHARS
        para_starts = {b.start for b in doc.blocks if b.kind == "para"}
        para_ends = {b.end for b in doc.blocks if b.kind == "para"}
        for part in parts:
            assert part.start in para_starts and part.end in para_ends, "parts are whole paragraphs"
            single_paragraph = sum(1 for b in doc.blocks if part.start <= b.start < part.end and b.kind == "para") == 1
            assert len(part.text) <= MAX_CHARS or single_paragraph


def test_short_articles_are_single_chunks() -> None:
    for name in LAW_FILES:
        for chunk in parsed(name)[1]:
            if chunk.part == 0 and chunk.article_no is not None:
                assert len(chunk.text) <= MAX_CHARS, (name, chunk.article)


def test_splitting_follows_max_chars() -> None:
    doc, _ = parsed("信访工作条例.md")
    small = chunk_document(doc, max_chars=200, target=TARGET)
    article_5 = [c for c in small if c.article_no == 5]  # 信访工作原则: a lead-in and five 项
    assert len(article_5) > 1
    assert [c.part for c in article_5] == list(range(1, len(article_5) + 1))
    assert "".join(c.text for c in article_5).replace("\n", "") == chunk_by_article("信访工作条例.md", 5).text.replace("\n", "")


# --- document metadata ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_titles_kinds_and_dates_match_sources(name: str) -> None:
    row = corpus_sources()[name]
    document = parsed(name)[0].document
    assert document.title == row.title
    assert document.source == name
    if name.endswith(".md"):
        assert document.kind == "law"
        assert document.doc_date == row.date
    else:
        assert document.kind == "report"
        assert document.doc_date == "2024"


def test_dated_header_events() -> None:
    document = parsed("信访工作条例.md")[0].document
    assert [(e.date, e.event) for e in document.dates] == [
        ("2022-01-24", "中共中央政治局会议审议批准"),
        ("2022-02-25", "中共中央、国务院发布"),
    ]
    assert document.doc_date == "2022-02-25"
    assert parsed("民法典.md")[0].document.doc_date == "2020-05-28"


def test_document_id_and_hash_are_stable() -> None:
    first = parsed("信访工作条例.md")[0].document
    again = parse_document(read_source(CORPUS_DIR / "信访工作条例.md").text, "信访工作条例.md", True).document
    assert (first.doc_id, first.content_hash) == (again.doc_id, again.content_hash)
    assert first.doc_id != parsed("宪法.md")[0].document.doc_id


# --- office documents with Arabic article numbers ---------------------------------------------------------------

ARABIC_ARTICLES = [
    "第1条 为了规范村务公开工作，制定本办法。",
    "第2条 村务公开每季度至少一次。",
    "第3条 村民对公开内容有异议的，可以向村务监督委员会反映。",
    "第4条 本办法自发布之日起施行。",
]


def _chunk_file(path: Path) -> tuple[ParsedDocument, list[Chunk]]:
    source = read_source(path)
    doc = parse_document(source.text, path.name, path.suffix == ".md")
    return doc, chunk_document(doc, MAX_CHARS, TARGET)


def _check_arabic_articles(doc: ParsedDocument, chunks: list[Chunk]) -> None:
    assert doc.document.title == "某村村务公开办法"
    assert doc.document.kind == "law"
    assert doc.document.doc_date == "2023-04-01"
    assert [c.article_no for c in chunks] == [1, 2, 3, 4]
    assert [c.article for c in chunks] == ["第一条", "第二条", "第三条", "第四条"]
    assert chunks[0].section == "第一章 总则"
    assert chunks[2].section == "第二章 监督"
    assert chunks[2].text == ARABIC_ARTICLES[2]


def test_docx_with_arabic_article_numbers(tmp_path: Path) -> None:
    document = docx.Document()
    for line in ["某村村务公开办法", "2023年4月1日 村民会议通过", "第一章 总则", *ARABIC_ARTICLES[:2], "第二章 监督",
                 *ARABIC_ARTICLES[2:]]:
        document.add_paragraph(line)
    path = tmp_path / "村务公开办法.docx"
    document.save(str(path))
    _check_arabic_articles(*_chunk_file(path))


def test_gbk_txt_with_arabic_article_numbers(tmp_path: Path) -> None:
    lines = ["某村村务公开办法", "", "2023年4月1日 村民会议通过", "第一章 总则", *ARABIC_ARTICLES[:2], "第二章 监督",
             *ARABIC_ARTICLES[2:]]
    path = tmp_path / "村务公开办法.txt"
    path.write_bytes("\r\n".join(lines).encode("gbk"))
    source = read_source(path)
    assert source.encoding == "gb18030"
    _check_arabic_articles(*_chunk_file(path))


@pytest.mark.parametrize("line, starts_article", [
    ("第五条为了规范村务公开工作，制定本办法。", True),  # no space after the label, as in many .docx files
    ("第５条　村务公开每季度至少一次。", True),  # full-width digit and space
    ("第三条规定的期限届满的，应当重新公开。", False),  # a sentence about an article
    ("第三条、第四条的规定适用于村民小组。", False),
])
def test_article_lines_are_told_from_sentences_about_articles(line: str, starts_article: bool) -> None:
    text = "某村村务公开办法\n第一条 总则。\n第二条 范围。\n第四条 公开。\n" + line + "\n"
    chunks = chunk_document(parse_document(text, "x.txt", False), MAX_CHARS, TARGET)
    assert (len(chunks) == 4) == starts_article
    assert chunks[-1].text.endswith(line)


def test_markdown_without_the_corpus_header_marker_keeps_its_body() -> None:
    text = "# 村规民约\n\n2024年1月10日 村民会议通过\n\n第一条 爱护公共设施。\n\n第二条 不倒垃圾。\n\n第三条 宴席从简。\n"
    parsed = parse_document(text, "村规民约.md", True)
    chunks = chunk_document(parsed, MAX_CHARS, TARGET)
    assert [c.article_no for c in chunks] == [1, 2, 3]
    assert parsed.document.doc_date == "2024-01-10"
