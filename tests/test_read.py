"""Tests for ingest.read: every fixture is a real file written to tmp_path."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import docx
import pytest
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from ingest.read import SUPPORTED_SUFFIXES, SourceText, UnreadableFileError, read_source

ARTICLE = "第一条 为了规范信访工作，制定本条例。"
ARTICLE_2 = "第二条 信访工作应当坚持党的领导。"


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def make_pdf(path: Path, pages: list[list[str]], **canvas_kwargs: object) -> Path:
    """One list of lines per page, drawn in reportlab's built-in Chinese CID font."""
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(path), **canvas_kwargs)
    for lines in pages:
        pdf.setFont("STSong-Light", 12)
        for i, line in enumerate(lines):
            pdf.drawString(72, 720 - 20 * i, line)
        pdf.showPage()
    pdf.save()
    return path


def test_supported_suffixes() -> None:
    assert SUPPORTED_SUFFIXES == frozenset({".md", ".txt", ".docx", ".pdf"})


# --- plain text encodings ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        pytest.param(f"{ARTICLE}\n{ARTICLE_2}\n".encode("utf-8"), "utf-8", id="utf-8"),
        pytest.param(codecs.BOM_UTF8 + f"{ARTICLE}\n{ARTICLE_2}\n".encode("utf-8"), "utf-8", id="utf-8-bom"),
        pytest.param(f"{ARTICLE}\n{ARTICLE_2}\n".encode("gbk"), "gb18030", id="gbk"),
        pytest.param(f"{ARTICLE}\n{ARTICLE_2}\n".encode("utf-16"), "utf-16", id="utf-16-native-bom"),
        pytest.param(codecs.BOM_UTF16_BE + f"{ARTICLE}\n{ARTICLE_2}\n".encode("utf-16-be"), "utf-16", id="utf-16-be"),
    ],
)
def test_text_encodings_decode_to_same_text(tmp_path: Path, data: bytes, encoding: str) -> None:
    path = write(tmp_path, "条例.txt", data)
    assert read_source(path) == SourceText(path=path, text=f"{ARTICLE}\n{ARTICLE_2}\n", encoding=encoding)


def test_gb18030_only_characters(tmp_path: Path) -> None:
    # "𠀀" (U+20000) and "€" are outside GBK, so this file is GB18030 proper.
    text = f"{ARTICLE}𠀀€\n"
    with pytest.raises(UnicodeEncodeError):
        text.encode("gbk")
    source = read_source(write(tmp_path, "a.md", text.encode("gb18030")))
    assert (source.text, source.encoding) == (text, "gb18030")


def test_newlines_normalised_but_other_whitespace_kept(tmp_path: Path) -> None:
    data = "  第一条\t为了规范信访工作，\r\n\r\n　　制定本条例。  \r第二条\r\n".encode("utf-8")
    text = read_source(write(tmp_path, "a.md", data)).text
    assert text == "  第一条\t为了规范信访工作，\n\n　　制定本条例。  \n第二条\n"


def test_uppercase_suffix_is_accepted(tmp_path: Path) -> None:
    assert read_source(write(tmp_path, "NOTICE.TXT", ARTICLE.encode("gbk"))).text == ARTICLE


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(512), "NUL", id="png-with-nul"),
        pytest.param(bytes(range(1, 32)) * 20 + b"abc", "binary", id="control-chars"),
        pytest.param(f"Article 1 {ARTICLE}".encode("utf-16-le"), "NUL", id="utf-16-without-bom"),
        pytest.param(codecs.BOM_UTF16_LE + "第一条\x00\x00".encode("utf-16-le"), "binary", id="utf-16-with-nul"),
        pytest.param(b"\xff\xfe\x00\xd8", "not valid text", id="utf-16-bom-broken"),
        pytest.param(b"\x80\x80\xff\xff\x81\x20", "not valid text", id="no-encoding-fits"),
    ],
)
def test_binary_or_undecodable_text_rejected(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableFileError, match=reason):
        read_source(write(tmp_path, "garbage.txt", data))


@pytest.mark.parametrize("data", [b"", b" \r\n\t\n", codecs.BOM_UTF8, "　\n".encode("utf-8")])
def test_empty_or_whitespace_file_rejected(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(UnreadableFileError, match="^empty file$"):
        read_source(write(tmp_path, "empty.md", data))


# --- file-level errors --------------------------------------------------------


@pytest.mark.parametrize("name", ["old.doc", "sheet.xlsx", "README"])
def test_unsupported_suffix_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnreadableFileError, match="unsupported file type"):
        read_source(write(tmp_path, name, ARTICLE.encode("utf-8")))


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="cannot open file"):
        read_source(tmp_path / "missing.txt")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_permissions_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.txt", ARTICLE.encode("utf-8"))
    path.chmod(0)
    with pytest.raises(UnreadableFileError, match="cannot open file"):
        read_source(path)


# --- .docx -------------------------------------------------------------------


def test_docx_paragraphs_and_table_in_body_order(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph(ARTICLE)
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("事项", "时限"), ("受理", "十五日")]):
        for cell, value in zip(row.cells, cells):
            cell.text = value
    document.add_paragraph(ARTICLE_2)
    path = tmp_path / "条例.docx"
    document.save(str(path))

    source = read_source(path)
    assert source.encoding == "docx"
    assert source.text == f"{ARTICLE}\n事项\t时限\n受理\t十五日\n{ARTICLE_2}"


def test_docx_without_text_rejected(tmp_path: Path) -> None:
    path = tmp_path / "blank.docx"
    docx.Document().save(str(path))
    with pytest.raises(UnreadableFileError, match="empty file"):
        read_source(path)


def test_corrupt_docx_rejected(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match=r"not a valid \.docx \(zip archive is corrupt\)"):
        read_source(write(tmp_path, "broken.docx", os.urandom(2048)))


# --- .pdf --------------------------------------------------------------------


def test_pdf_chinese_text_pages_in_order(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "条例.pdf", [[ARTICLE, ARTICLE_2], ["第三条 第二页内容。"]])
    source = read_source(path)
    assert source.encoding == "pdf"
    assert source.text.index(ARTICLE) < source.text.index(ARTICLE_2) < source.text.index("第三条 第二页内容。")


def test_pdf_encrypted_with_empty_user_password_is_read(tmp_path: Path) -> None:
    encrypt = StandardEncryption("", ownerPassword="owner")
    path = make_pdf(tmp_path / "locked.pdf", [[ARTICLE]], encrypt=encrypt)
    assert ARTICLE in read_source(path).text


def test_pdf_needing_password_rejected(tmp_path: Path) -> None:
    encrypt = StandardEncryption("user", ownerPassword="owner")
    path = make_pdf(tmp_path / "locked.pdf", [[ARTICLE]], encrypt=encrypt)
    with pytest.raises(UnreadableFileError, match="needs a password"):
        read_source(path)


def test_pdf_without_text_layer_rejected(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.rect(72, 72, 400, 600, fill=1)  # stands in for a scanned page image
    pdf.showPage()
    pdf.save()
    with pytest.raises(UnreadableFileError, match="no text layer.*OCR"):
        read_source(path)


@pytest.mark.parametrize(
    "data",
    [pytest.param(os.urandom(2048), id="random"), pytest.param(b"%PDF-1.4\n1 0 obj\n<<", id="truncated")],
)
def test_corrupt_pdf_rejected(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(UnreadableFileError, match=r"not a valid \.pdf"):
        read_source(write(tmp_path, "broken.pdf", data))
