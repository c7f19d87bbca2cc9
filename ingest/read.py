"""First stage of ingestion: turn a file on disk into plain text.

Later stages record exact character spans in `SourceText.text`, so the only
changes made to a document's own characters are newline normalisation, BOM
removal and dropping invisible control and bidi characters; anything we cannot
read faithfully, or that would cost too much to read, is rejected with a reason
instead.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import docx
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph
from lxml import etree
from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".md", ".txt", ".docx", ".pdf"})

# Control characters that never occur in real prose (tab, newlines, \v and \f do).
_CONTROL_CHARS = re.compile(r"[\x01-\x08\x0e-\x1f\x7f-\x9f]")
# Above this share of control characters, "text" that happened to decode is binary.
_MAX_CONTROL_SHARE = 0.01
# Removed from every text: C0/C1 controls other than whitespace (\r is normalised to \n first) and the bidi
# embeddings, overrides, isolates and marks that can make text display differently from what is indexed.
_INVISIBLE_CHARS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# Limits on what one file may cost to read; staff upload files, so a hostile or broken one must not exhaust
# the server. A .docx is a zip archive of XML: a 300 KB upload can expand to gigabytes, and 27 KB of empty
# paragraphs cost python-docx 42 s of CPU. Real documents stay far below every limit: 民法典, the longest law
# in the corpus, is 113,000 characters; saved by python-docx it has 17 parts, 26,000 XML elements and 2,300
# paragraphs, and its word/document.xml is 0.4 MB, deflated 5:1.
MAX_DOCX_ENTRIES = 1_000  # parts in the zip archive: ~15 for plain text, one more per embedded image
MAX_DOCX_UNCOMPRESSED_BYTES = 64 * 2**20  # all parts together; python-docx holds them all in memory
MAX_DOCX_PART_BYTES = 32 * 2**20  # any one part, word/document.xml above all
MAX_DOCX_COMPRESSION_RATIO = 100  # Word's XML deflates ~10:1; repeated bytes, a zip bomb's trick, ~1000:1
DOCX_RATIO_CHECKED_ABOVE_BYTES = 2**20  # small parts (empty headers, settings) legitimately compress better
MAX_DOCX_XML_ELEMENTS = 1_000_000  # lxml nodes python-docx builds and walks, in every part together
MAX_DOCX_BLOCKS = 200_000  # paragraphs and table cells; python-docx spends ~15 µs of Python on each
MAX_PDF_PAGES = 2_000  # pypdf parses each page's content stream in Python
MAX_TEXT_CHARS = 10_000_000  # ~90 times 民法典, in any file type; every character is chunked and embedded
_WORD_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_DOCX_BLOCK_TAGS = frozenset({f"{{{_WORD_NS}}}p", f"{{{_WORD_NS}}}tc"})


class UnreadableFileError(Exception):
    """A file that cannot be read; str(e) is a short human-readable reason."""


class DocumentTooLargeError(UnreadableFileError):
    """A file over one of the MAX_* limits, refused before it can exhaust memory or CPU."""


@dataclass(frozen=True)
class SourceText:
    """A document's text exactly as later stages will index and cite it."""

    path: Path
    text: str  # newlines are "\n", no BOM, no NUL characters
    encoding: str  # "utf-8", "gb18030", "utf-16", "docx" or "pdf"


def read_source(path: Path) -> SourceText:
    """Read a supported file, or raise UnreadableFileError saying why not."""
    suffix = path.suffix.lower()  # Windows offices often produce ".TXT" / ".DOCX"
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnreadableFileError(f"unsupported file type '{path.suffix}' (supported: {supported})")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UnreadableFileError(f"cannot open file ({e.strerror or e})") from e
    if not raw:
        raise UnreadableFileError("empty file")

    if suffix == ".docx":
        text, encoding = _read_docx(raw), "docx"
    elif suffix == ".pdf":
        text, encoding = _read_pdf(raw), "pdf"
    else:
        text, encoding = _decode_text(raw)

    if len(text) > MAX_TEXT_CHARS:
        raise DocumentTooLargeError(f"too large: {len(text):,} characters of text (limit {MAX_TEXT_CHARS:,})")
    text = _INVISIBLE_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        raise UnreadableFileError("empty file")
    return SourceText(path=path, text=text, encoding=encoding)


def _decode_text(raw: bytes) -> tuple[str, str]:
    """Decode plain text: a BOM is certain; otherwise strict UTF-8, then GB18030.

    Strict decoding makes GBK files (common in government offices) fail UTF-8
    rather than turn into mojibake; GB18030 is a superset of GBK and GB2312.
    charset-normalizer is deliberately not used: on garbage it guesses a
    single-byte code page and returns mojibake instead of failing.
    """
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates: tuple[str, ...] = ("utf-16",)  # the codec reads the byte order from the BOM
    elif b"\x00" in raw:
        raise UnreadableFileError("contains NUL bytes (binary file, or UTF-16 without a BOM)")
    elif raw.startswith(codecs.BOM_UTF8):
        candidates = ("utf-8",)
    else:
        candidates = ("utf-8", "gb18030")
    for encoding in candidates:
        try:
            text = raw.decode(encoding).removeprefix("\ufeff")
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UnreadableFileError(f"not valid text in any of: {', '.join(candidates)}")

    if "\x00" in text or len(_CONTROL_CHARS.findall(text)) > _MAX_CONTROL_SHARE * len(text):
        raise UnreadableFileError("looks like a binary file (too many control characters)")
    return text, encoding


def _read_docx(raw: bytes) -> str:
    """Paragraphs and table rows in body order, so text reads as in Word."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as package:
            _check_docx_package(package)
        blocks = [_block_text(block) for block in docx.Document(io.BytesIO(raw)).iter_inner_content()]
    except UnreadableFileError:
        raise
    except zipfile.BadZipFile as e:
        raise UnreadableFileError("not a valid .docx (zip archive is corrupt)") from e
    except Exception as e:  # python-docx reports damaged packages as KeyError, ValueError, lxml errors...
        raise UnreadableFileError(f"not a valid .docx ({e})") from e
    return "\n".join(blocks)


def _check_docx_package(package: zipfile.ZipFile) -> None:
    """Refuse a zip bomb before python-docx, which decompresses and parses every part at once, sees it.

    The declared sizes can be trusted as upper bounds: zipfile never yields more than a part's declared
    size (it stops there and fails the CRC check), so every read below, and python-docx's, is bounded too.
    """
    parts = package.infolist()
    if len(parts) > MAX_DOCX_ENTRIES:
        raise DocumentTooLargeError(f"too large: .docx has {len(parts):,} zip entries (limit {MAX_DOCX_ENTRIES:,})")
    for part in parts:
        name = repr(part.filename[:80])  # the uploader chose it: no control characters into the reply
        if part.file_size > MAX_DOCX_PART_BYTES:
            raise DocumentTooLargeError(f"too large: .docx part {name} expands to {_mb(part.file_size)} "
                                        f"(limit {_mb(MAX_DOCX_PART_BYTES)})")
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > DOCX_RATIO_CHECKED_ABOVE_BYTES and ratio > MAX_DOCX_COMPRESSION_RATIO:
            raise DocumentTooLargeError(f"too large: .docx part {name} is compressed {ratio:,.0f}:1 "
                                        f"(limit {MAX_DOCX_COMPRESSION_RATIO}:1; a zip bomb?)")
    total = sum(part.file_size for part in parts)
    if total > MAX_DOCX_UNCOMPRESSED_BYTES:
        raise DocumentTooLargeError(
            f"too large: .docx expands to {_mb(total)} (limit {_mb(MAX_DOCX_UNCOMPRESSED_BYTES)})")
    counter = _ElementCounter()
    for part in parts:
        _count_xml_elements(package, part, counter)


def _mb(size: int) -> str:
    return f"{size / 2**20:,.1f}".removesuffix(".0") + " MB"


class _ElementCounter:
    """lxml parser target that counts XML elements and Word blocks without building a tree."""

    def __init__(self) -> None:
        self.elements = 0
        self.blocks = 0

    def start(self, tag: str, attrib: object) -> None:
        self.elements += 1
        if self.elements > MAX_DOCX_XML_ELEMENTS:
            raise DocumentTooLargeError(f"too large: .docx has too many XML elements (limit {MAX_DOCX_XML_ELEMENTS:,})")
        if tag in _DOCX_BLOCK_TAGS:
            self.blocks += 1
            if self.blocks > MAX_DOCX_BLOCKS:
                raise DocumentTooLargeError(
                    f"too large: .docx has too many paragraphs and table cells (limit {MAX_DOCX_BLOCKS:,})")

    def close(self) -> None:
        """Required of a parser target; the counts are already in place."""


def _count_xml_elements(package: zipfile.ZipFile, part: zipfile.ZipInfo, counter: _ElementCounter) -> None:
    """Stream one part through the counter, whatever its name.

    The package's own content types, not the part names, decide which parts python-docx parses, so every
    part is tried; media are not XML and fail on their first bytes.
    """
    parser = etree.XMLParser(target=counter, resolve_entities=False, no_network=True)
    try:
        with package.open(part) as stream:
            while chunk := stream.read(2**16):
                parser.feed(chunk)
        parser.close()
    except etree.XMLSyntaxError:
        return  # not XML, or broken XML that python-docx will report if it needs the part


def _block_text(block: Paragraph | Table) -> str:
    """A table becomes one line per row, cells separated by tabs; a merged cell's text appears once, as in Word.

    python-docx's `row.cells` repeats a merged cell for each grid column it spans: a 37 KB file with fifty
    `w:gridSpan="100000"` cells ran for over a minute. Each `w:tc` element is read once instead.
    """
    if isinstance(block, Table):
        return "\n".join("\t".join(_Cell(tc, block).text for tc in row._tr.tc_lst) for row in block.rows)
    return block.text


def _read_pdf(raw: bytes) -> str:
    """Text layer of every page; pypdf already tries the empty user password."""
    try:
        reader = PdfReader(io.BytesIO(raw))
        if len(reader.pages) > MAX_PDF_PAGES:
            raise DocumentTooLargeError(f"too large: PDF has {len(reader.pages):,} pages (limit {MAX_PDF_PAGES:,})")
        pages, length = [], 0
        for page in reader.pages:
            pages.append(page.extract_text())
            length += len(pages[-1])
            if length > MAX_TEXT_CHARS:  # stop extracting as soon as the text is over the limit
                raise DocumentTooLargeError(f"too large: too many characters of text (limit {MAX_TEXT_CHARS:,})")
    except UnreadableFileError:
        raise
    except FileNotDecryptedError as e:
        raise UnreadableFileError("encrypted PDF that needs a password") from e
    except DependencyError as e:
        raise UnreadableFileError(f"encrypted PDF that cannot be decrypted here ({e})") from e
    except Exception as e:  # pypdf reports damaged files with many exception types
        raise UnreadableFileError(f"not a valid .pdf ({e})") from e
    text = "\n".join(pages)
    if not _INVISIBLE_CHARS.sub("", text).strip():  # broken font maps can emit NULs and other controls
        raise UnreadableFileError("PDF has no text layer (scanned image?); OCR is not supported")
    return text
