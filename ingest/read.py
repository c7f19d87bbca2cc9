"""First stage of ingestion: turn a file on disk into plain text.

Later stages record exact character spans in `SourceText.text`, so the only
changes made to a document's own characters are newline normalisation and BOM
removal; anything we cannot read faithfully is rejected with a reason instead.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf import PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".md", ".txt", ".docx", ".pdf"})

# Control characters that never occur in real prose (tab, newlines, \v and \f do).
_CONTROL_CHARS = re.compile(r"[\x01-\x08\x0e-\x1f\x7f-\x9f]")
# Above this share of control characters, "text" that happened to decode is binary.
_MAX_CONTROL_SHARE = 0.01


class UnreadableFileError(Exception):
    """A file that cannot be read; str(e) is a short human-readable reason."""


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

    if not text.strip():
        raise UnreadableFileError("empty file")
    return SourceText(path=path, text=text.replace("\r\n", "\n").replace("\r", "\n"), encoding=encoding)


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
        blocks = [_block_text(block) for block in docx.Document(io.BytesIO(raw)).iter_inner_content()]
    except zipfile.BadZipFile as e:
        raise UnreadableFileError("not a valid .docx (zip archive is corrupt)") from e
    except Exception as e:  # python-docx reports damaged packages as KeyError, ValueError, lxml errors...
        raise UnreadableFileError(f"not a valid .docx ({e})") from e
    return "\n".join(blocks)


def _block_text(block: Paragraph | Table) -> str:
    """A table becomes one line per row, cells separated by tabs."""
    if isinstance(block, Table):
        return "\n".join("\t".join(cell.text for cell in row.cells) for row in block.rows)
    return block.text


def _read_pdf(raw: bytes) -> str:
    """Text layer of every page; pypdf already tries the empty user password."""
    try:
        pages = [page.extract_text() for page in PdfReader(io.BytesIO(raw)).pages]
    except FileNotDecryptedError as e:
        raise UnreadableFileError("encrypted PDF that needs a password") from e
    except DependencyError as e:
        raise UnreadableFileError(f"encrypted PDF that cannot be decrypted here ({e})") from e
    except Exception as e:  # pypdf reports damaged files with many exception types
        raise UnreadableFileError(f"not a valid .pdf ({e})") from e
    text = "\n".join(pages).replace("\x00", "")  # broken font maps can emit NULs
    if not text.strip():
        raise UnreadableFileError("PDF has no text layer (scanned image?); OCR is not supported")
    return text
