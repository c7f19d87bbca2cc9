"""Hostile uploads: zip bombs and oversized files are refused quickly, invisible characters leave titles.

Every hostile file is built here, in tmp_path; the big ones are written in chunks and compress to kilobytes.
"""

from __future__ import annotations

import io
import struct
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import docx
import pytest
from docx.oxml import OxmlElement
from docx.oxml.ns import qn

from ingest import read
from ingest.parse import parse_document
from ingest.read import DocumentTooLargeError, UnreadableFileError, read_source
from tests.test_read import ARTICLE, ARTICLE_2, make_pdf

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DOCUMENT_XML = "word/document.xml"


def normal_docx() -> bytes:
    document = docx.Document()
    document.add_paragraph(ARTICLE)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def docx_with(path: Path, document_xml: Iterable[bytes], extra_parts: int = 0,
              compress_type: int = zipfile.ZIP_DEFLATED) -> Path:
    """A real .docx whose word/document.xml is written chunk by chunk, plus `extra_parts` tiny parts."""
    with zipfile.ZipFile(io.BytesIO(normal_docx())) as source, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for part in source.infolist():
            if part.filename != DOCUMENT_XML:
                target.writestr(part, source.read(part))
        with target.open(zipfile.ZipInfo(DOCUMENT_XML) if compress_type == zipfile.ZIP_STORED else DOCUMENT_XML,
                         "w") as stream:
            for chunk in document_xml:
                stream.write(chunk)
        for i in range(extra_parts):
            target.writestr(f"customXml/extra{i}.xml", b"<a/>")
    return path


def spaces(megabytes: int) -> Iterator[bytes]:
    chunk = b" " * 2**20
    for _ in range(megabytes):
        yield chunk


def body(paragraphs: bytes) -> Iterator[bytes]:
    yield f'<w:document xmlns:w="{W_NS}"><w:body>'.encode()
    yield paragraphs
    yield b"</w:body></w:document>"


def refused(path: Path, match: str) -> DocumentTooLargeError:
    started = time.perf_counter()
    with pytest.raises(DocumentTooLargeError, match=match) as caught:
        read_source(path)
    assert time.perf_counter() - started < 2, "a hostile file must be refused before it is parsed"
    return caught.value


def test_normal_docx_is_within_every_limit(tmp_path: Path) -> None:
    path = docx_with(tmp_path / "ok.docx", body(f"<w:p><w:r><w:t>{ARTICLE}</w:t></w:r></w:p>".encode()))
    assert read_source(path).text == ARTICLE


def test_docx_part_expanding_past_its_limit_refused(tmp_path: Path) -> None:
    path = docx_with(tmp_path / "bomb.docx", spaces(100))
    assert path.stat().st_size < 1_000_000
    refused(path, r"too large: \.docx part 'word/document\.xml' expands to 100 MB \(limit 32 MB\)")


def test_docx_part_compressed_too_well_refused(tmp_path: Path) -> None:
    refused(docx_with(tmp_path / "bomb.docx", spaces(8)), r"document\.xml' is compressed [\d,]+:1 \(limit 100:1")


def test_docx_with_too_many_entries_refused(tmp_path: Path) -> None:
    path = docx_with(tmp_path / "many.docx", body(b"<w:p/>"), extra_parts=read.MAX_DOCX_ENTRIES)
    refused(path, r"too large: \.docx has 1,01\d zip entries \(limit 1,000\)")


@pytest.mark.parametrize(
    ("compress_type", "match"),
    [
        pytest.param(zipfile.ZIP_DEFLATED, r"document\.xml' is compressed 2\d\d:1 \(limit 100:1", id="deflated"),
        pytest.param(zipfile.ZIP_STORED, r"too many paragraphs and table cells \(limit 200,000\)", id="stored"),
    ],
)
def test_docx_with_300000_empty_paragraphs_refused(tmp_path: Path, compress_type: int, match: str) -> None:
    path = docx_with(tmp_path / "paragraphs.docx", body(b"<w:p/>" * 300_000), compress_type=compress_type)
    error = refused(path, match)
    assert isinstance(error, UnreadableFileError), "callers that catch UnreadableFileError catch this too"


def test_docx_blocks_are_counted_whatever_the_namespace_prefix(tmp_path: Path) -> None:
    xml = f'<x:document xmlns:x="{W_NS}"><x:body>'.encode() + b"<x:p/>" * 200_001 + b"</x:body></x:document>"
    refused(docx_with(tmp_path / "prefix.docx", [xml], compress_type=zipfile.ZIP_STORED), r"limit 200,000")


def test_docx_limits_on_total_size_and_elements(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = docx_with(tmp_path / "ok.docx", body(b"<w:p><w:r><w:br/><w:br/><w:br/></w:r></w:p>" * 10))
    monkeypatch.setattr(read, "MAX_DOCX_XML_ELEMENTS", 40)
    refused(path, r"too many XML elements \(limit 40\)")
    monkeypatch.setattr(read, "MAX_DOCX_UNCOMPRESSED_BYTES", 2**19)
    refused(path, r"too large: \.docx expands to 0\.\d MB \(limit 0\.5 MB\)")


def test_docx_part_declaring_a_false_size_is_never_read_past_it(tmp_path: Path) -> None:
    """The limits trust declared sizes because zipfile stops at them; a part that lies fails its CRC check."""
    path = docx_with(tmp_path / "liar.docx", spaces(50))
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")  # the central directory, after all compressed data
    while data[entry + 46 : entry + 46 + len(DOCUMENT_XML)] != DOCUMENT_XML.encode():
        entry = data.find(b"PK\x01\x02", entry + 1)
    struct.pack_into("<I", data, entry + 24, 1000)  # the record's uncompressed size: 1000 bytes, not 50 MB
    path.write_bytes(data)
    with pytest.raises(UnreadableFileError, match="zip archive is corrupt"):
        read_source(path)


def test_docx_merged_cell_text_appears_once(tmp_path: Path) -> None:
    """A cell spanning 100,000 grid columns is read once, not 100,000 times."""
    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "事项", "时限"
    row = table.rows[1]
    row.cells[0].text = "受理"
    row._tr.remove(row._tr.tc_lst[1])
    span = OxmlElement("w:gridSpan")
    span.set(qn("w:val"), "100000")
    row._tr.tc_lst[0].get_or_add_tcPr().append(span)
    path = tmp_path / "merged.docx"
    document.save(str(path))
    assert read_source(path).text == "事项\t时限\n受理"


def test_pdf_page_and_text_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_pdf(tmp_path / "long.pdf", [[ARTICLE], [ARTICLE_2], [ARTICLE]])
    monkeypatch.setattr(read, "MAX_PDF_PAGES", 2)
    refused(path, r"too large: PDF has 3 pages \(limit 2\)")
    monkeypatch.setattr(read, "MAX_PDF_PAGES", 3)
    monkeypatch.setattr(read, "MAX_TEXT_CHARS", 30)
    refused(path, r"too large: too many characters of text \(limit 30\)")


def test_text_limit_applies_to_plain_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.txt"
    path.write_text(ARTICLE * 3, encoding="utf-8")
    monkeypatch.setattr(read, "MAX_TEXT_CHARS", len(ARTICLE) * 3 - 1)
    refused(path, r"too large: 57 characters of text \(limit 56\)")


# --- invisible characters ------------------------------------------------------

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"


def test_bidi_and_control_characters_leave_text_but_tabs_and_newlines_stay(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    body = ARTICLE * 12  # a share of control characters above 1 % would mean a binary file
    path.write_text(f"第一条\t为了{BIDI}规范\x85信访\x07工作。\n第二条\u200b{body}", encoding="utf-8")
    assert read_source(path).text == f"第一条\t为了规范信访工作。\n第二条\u200b{body}"


def test_invisible_characters_leave_a_title_line(tmp_path: Path) -> None:
    path = tmp_path / "通知.txt"
    path.write_text(f"\u2066关于{ZERO_WIDTH}村务\u202e公开\x1b的通知\u2069\n{ARTICLE * 6}\n", encoding="utf-8")
    source = read_source(path)
    assert parse_document(source.text, path.name, is_markdown=False).document.title == "关于村务公开的通知"
    markdown = f"# 村务\u200f公开\u200b办法\n\n{ARTICLE}\n"
    assert parse_document(markdown, "办法.md", is_markdown=True).document.title == "村务公开办法"


def test_invisible_characters_leave_a_title_from_the_file_name(tmp_path: Path) -> None:
    name = f"报告\u202egpj\u200b\x07{BIDI}\tv2.txt"  # RLO would make "报告gpj.txt" read "报告txt.jpg"
    path = tmp_path / name
    path.write_text(f"{ARTICLE}\n{ARTICLE_2}\n", encoding="utf-8")  # no title line: the name is the title
    source = read_source(path)
    assert parse_document(source.text, path.name, is_markdown=False).document.title == "报告gpj v2"
