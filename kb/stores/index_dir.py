"""The index directory: what it holds, how it is written atomically, and how it is checked when loaded.

    index/                  a symlink, swapped atomically to the newest complete build
    .index.builds/<stamp>/  one complete build:
        manifest.json       format version, model id/fingerprint/dimension, chunker version, documents, time,
                            the knowledge base's own identity (kb.config.Identity: township, help station …),
                            and the SHA-256 of every other file (a damaged file is refused, not served)
        dense.faiss         FAISS inner-product index over normalised chunk vectors (row = chunk row)
        lexical_*           BM25 posting lists (kb.text.lexical)
        meta.sqlite         documents and chunks
        handles.*           questions attached to passages, when the documents have sidecars (kb.stores.handles)

A build is written into a fresh folder and only then published, so an interrupted or failed ingest
leaves the index in use untouched.

Loading checks what the files hold too (load_index): JSON of the shape the code reads, vectors of unit length,
parts that agree; a damaged index is refused with one IndexCorruptError line naming the file, never served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from kb.config import own_identity
from kb.errors import IndexCorruptError, IndexMismatchError, IndexMissingError, IndexProblem
from kb.schema import CHUNKER_VERSION, Chunk, DatedEvent, Document
from kb.stores.handles import HANDLES_VECTORS, QuestionHandles
from kb.text.lexical import LexicalIndex, check_shape, read_json

#: 3: indexes hold the questions attached to passages (kb.stores.handles); older ones are rebuilt so that they do.
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
DENSE = "dense.faiss"
META = "meta.sqlite"
STALE_PARTIAL_SECONDS = 24 * 3600
#: The manifest as load_index reads it, once its versions are this program's (kb.text.lexical.check_shape).
_MANIFEST_SHAPE = {
    "embedding": {"model_id": str, "fingerprint": str, "dimension": int},
    "counts": {"documents": int, "chunks": int, "questions": int},
    "documents": {str: str},
    "built_at": str,
    "checksums": {str: str},
}
_DATES_SHAPE = [{"date": str, "event": str}]
#: Stored vectors are the model's L2-normalised outputs. One further than this from unit length was altered or
#: miscomputed: scaled up, it would outscore every real passage and be served with full confidence.
NORM_TOLERANCE = 1e-2


_SCHEMA = """
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
    content_hash TEXT NOT NULL, doc_date TEXT, dates TEXT NOT NULL, text TEXT NOT NULL
);
CREATE TABLE chunks (
    row INTEGER PRIMARY KEY, chunk_id TEXT UNIQUE NOT NULL, doc_id TEXT NOT NULL REFERENCES documents,
    seq INTEGER NOT NULL, section TEXT NOT NULL, article TEXT, article_no INTEGER, part INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL
);
CREATE INDEX chunks_article ON chunks (doc_id, article_no);
"""


@dataclass
class IndexContents:
    """Everything a build writes, in memory."""

    documents: list[Document]
    chunks: list[Chunk]  # row i of `vectors` and of the lexical index is chunks[i]
    vectors: np.ndarray
    lexical: LexicalIndex
    model_id: str
    model_fingerprint: str
    handles: QuestionHandles | None = None
    #: The knowledge base's own identity values (kb.config.own_identity's), kept in the manifest.
    identity: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadedIndex:
    path: Path
    manifest: dict
    documents: dict[str, Document]
    chunks: list[Chunk]
    dense: faiss.IndexFlatIP  # load_index refuses any other kind
    lexical: LexicalIndex
    handles: QuestionHandles | None = None


def _builds_dir(index_dir: Path) -> Path:
    return index_dir.parent / f".{index_dir.name}.builds"


def write_index(contents: IndexContents, index_dir: Path) -> Path:
    """Write a complete build beside `index_dir`, then atomically point `index_dir` at it."""
    index_dir = index_dir.absolute()
    builds = _builds_dir(index_dir)
    builds.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    staging, final = builds / f"{stamp}.partial", builds / stamp
    staging.mkdir()
    try:
        _write_build(contents, staging)
        staging.rename(final)
        _publish(final, index_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        raise
    _remove_old_builds(builds, keep={final.resolve(), index_dir.resolve()})
    return final


def remove_index(index_dir: Path) -> None:
    """Delete an index and every build behind it, so that the next ingest starts cold (an index is a link to
    its current build: removing the folder it points to alone would leave the link, and vectors to reuse)."""
    index_dir = index_dir.absolute()
    if index_dir.is_symlink():
        index_dir.unlink()
    else:
        shutil.rmtree(index_dir, ignore_errors=True)
    shutil.rmtree(_builds_dir(index_dir), ignore_errors=True)


def _write_build(contents: IndexContents, target: Path) -> None:
    dimension = int(contents.vectors.shape[1])
    dense = faiss.IndexFlatIP(dimension)
    if len(contents.vectors):
        dense.add(np.ascontiguousarray(contents.vectors, dtype=np.float32))
    faiss.write_index(dense, str(target / DENSE))
    contents.lexical.save(target)
    if contents.handles is not None and len(contents.handles):
        contents.handles.save(target)
    with sqlite3.connect(target / META) as db:
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(d.doc_id, d.title, d.kind, d.source, d.content_hash, d.doc_date,
              json.dumps([e.__dict__ for e in d.dates], ensure_ascii=False), d.text) for d in contents.documents],
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(row, c.chunk_id, c.doc_id, c.seq, c.section, c.article, c.article_no, c.part, c.start, c.end, c.text)
             for row, c in enumerate(contents.chunks)],
        )
    db.close()
    manifest = {
        "format_version": FORMAT_VERSION,
        "chunker_version": CHUNKER_VERSION,
        "embedding": {"model_id": contents.model_id, "fingerprint": contents.model_fingerprint,
                      "dimension": dimension},
        "counts": {"documents": len(contents.documents), "chunks": len(contents.chunks),
                   "questions": len(contents.handles) if contents.handles is not None else 0},
        "documents": {d.source: d.content_hash for d in contents.documents},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "identity": contents.identity,
    }
    manifest["checksums"] = {f.name: _sha256(f) for f in sorted(target.iterdir()) if f.name != MANIFEST}
    (target / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(index_dir: Path, manifest: dict) -> None:
    """Every file of the build must be listed in the manifest (read_manifest's) and be the one that was written:
    random bytes of the right size are refused, and so is a file, or a name, the manifest does not vouch for."""
    expected: dict[str, str] = manifest["checksums"]
    present = {p.name for p in index_dir.iterdir()} - {MANIFEST}
    if not expected or present - expected.keys():
        unlisted = ", ".join(sorted(present - expected.keys())) or "any file"
        raise IndexCorruptError(f"index at {index_dir} is damaged (its manifest has no checksum for {unlisted}): "
                                "rebuild it with `kb ingest`")
    for name, digest in expected.items():
        path = index_dir / name  # only names found in the build folder are opened
        if name not in present or not path.is_file() or _sha256(path) != digest:
            raise IndexCorruptError(f"index at {index_dir} is damaged ({name!r} is missing or does not match its "
                                    "checksum): rebuild it with `kb ingest`")


def _publish(build: Path, index_dir: Path) -> None:
    if index_dir.exists() and not index_dir.is_symlink():
        raise IndexProblem(f"{index_dir} is a real directory, not an index link; move it away first")
    link = index_dir.with_name(f".{index_dir.name}.link-{os.getpid()}")
    if link.is_symlink():
        link.unlink()
    link.symlink_to(os.path.relpath(build, index_dir.parent))
    os.replace(link, index_dir)  # atomic: readers see the old build or the new one, never neither


def _remove_old_builds(builds: Path, keep: set[Path]) -> None:
    """Old builds go; processes that still have one open keep reading it (POSIX keeps open files alive).

    The build in use (which a concurrent ingest may have just published) and builds still being written are
    left alone; a partial build abandoned a day ago goes too.
    """
    for old in builds.iterdir():
        abandoned = old.name.endswith(".partial") and time.time() - old.stat().st_mtime > STALE_PARTIAL_SECONDS
        if old.resolve() not in keep and (abandoned or not old.name.endswith(".partial")):
            shutil.rmtree(old, ignore_errors=True)


def read_manifest(index_dir: Path) -> dict:
    """The manifest of the build at `index_dir`, refused when missing, of another version (a rebuild, which
    ingest.build.ensure_index starts on its own), or damaged: no JSON object of the shape the loader reads."""
    path = index_dir / MANIFEST
    if not path.is_file():
        raise IndexMissingError(f"no index at {index_dir}: run `kb ingest` first")
    try:
        manifest = read_json(path, dict)
        _check_versions(index_dir, manifest)  # first: another format may hold other fields
        check_shape(manifest, _MANIFEST_SHAPE, MANIFEST)
        own_identity(manifest.get("identity", {}), MANIFEST)  # optional: indexes written before it have none
    except ValueError as exc:
        raise IndexCorruptError(f"index at {index_dir} is damaged ({exc}): rebuild it with `kb ingest`") from exc
    return manifest


def stored_identity(index_dir: Path) -> dict[str, str]:
    """The identity stored with the index at `index_dir`, for the next build to keep: read from any manifest that
    holds a valid one, even of another format or chunker (an upgrade's rebuild keeps the township's words);
    {} when there is no index or no valid identity."""
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
        return own_identity(manifest.get("identity", {}), MANIFEST) if isinstance(manifest, dict) else {}
    except (OSError, ValueError):
        return {}


def _check_versions(index_dir: Path, manifest: dict) -> None:
    if not _is_version(manifest.get("format_version"), FORMAT_VERSION):
        raise IndexMismatchError(
            f"index at {index_dir} has format version {manifest.get('format_version')!r}, this program reads "
            f"version {FORMAT_VERSION}: rebuild it with `kb ingest`"
        )
    if not _is_version(manifest.get("chunker_version"), CHUNKER_VERSION):
        raise IndexMismatchError(
            f"index at {index_dir} was cut into passages by chunker version {manifest.get('chunker_version')!r}, "
            f"this program cuts with version {CHUNKER_VERSION}: rebuild it with `kb ingest`"
        )


def _is_version(found: object, version: int) -> bool:
    return type(found) is int and found == version  # JSON's true is no version, though it equals 1


def check_model(manifest: dict, model_id: str, fingerprint: str, dimension: int) -> None:
    """Refuse to search vectors made by another model: the scores would be meaningless."""
    built = manifest.get("embedding", {})
    if (built.get("model_id"), built.get("fingerprint"), built.get("dimension")) != (model_id, fingerprint, dimension):
        raise IndexMismatchError(
            f"the index was built with embedding model {built.get('model_id')} "
            f"(fingerprint {built.get('fingerprint')}, dimension {built.get('dimension')}), "
            f"but the configured model is {model_id} (fingerprint {fingerprint}, dimension {dimension}): "
            "run `kb ingest` to rebuild, or set KB_EMBEDDING_MODEL back"
        )


def load_index(index_dir: Path) -> LoadedIndex:
    """Load a complete build, checking that its parts agree with each other."""
    index_dir = Path(index_dir).resolve()
    manifest = read_manifest(index_dir)
    verify_checksums(index_dir, manifest)
    try:
        dense = faiss.read_index(str(index_dir / DENSE))
        lexical = LexicalIndex.load(index_dir)
        handles = QuestionHandles.load(index_dir)
        db = sqlite3.connect(f"file:{index_dir / META}?mode=ro", uri=True)
        try:
            documents = {row[0]: Document(row[0], row[1], row[2], row[3], row[4], row[7], _dates(row[6]), row[5])
                         for row in db.execute("SELECT * FROM documents")}
            chunks = [Chunk(*row[1:]) for row in db.execute("SELECT * FROM chunks ORDER BY row")]
        finally:
            db.close()
    except (RuntimeError, OSError, ValueError, sqlite3.DatabaseError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"index at {index_dir} is damaged ({exc}): rebuild it with `kb ingest`") from exc
    if not isinstance(dense, faiss.IndexFlatIP):
        raise IndexCorruptError(f"index at {index_dir} is damaged ({DENSE} holds a {type(dense).__name__}, not the "
                                "IndexFlatIP this program writes): rebuild it with `kb ingest`")
    expected = manifest["counts"]["chunks"]
    if not (dense.ntotal == len(chunks) == lexical.n_docs == expected):
        raise IndexCorruptError(
            f"index at {index_dir} is inconsistent ({dense.ntotal} vectors, {len(chunks)} chunks, "
            f"{lexical.n_docs} lexical rows, manifest says {expected}): rebuild it with `kb ingest`"
        )
    if dense.d != manifest["embedding"]["dimension"]:
        raise IndexCorruptError(f"index at {index_dir}: vector dimension {dense.d} disagrees with its manifest")
    _check_unit_length(index_dir, DENSE, stored_vectors(dense))
    if handles is not None and (len(handles) != manifest["counts"]["questions"]
                                or handles.vectors.shape[1:] != (dense.d,) or handles.vectors.dtype != np.float32
                                or not {h.doc_id for h in handles.handles} <= set(documents)):
        raise IndexCorruptError(f"index at {index_dir}: its attached questions disagree with its passages: "
                                "rebuild it with `kb ingest`")
    if handles is not None:
        _check_unit_length(index_dir, HANDLES_VECTORS, handles.vectors)
    return LoadedIndex(index_dir, manifest, documents, chunks, dense, lexical, handles)


def _dates(text: str) -> list[DatedEvent]:
    """A document's dated events, stored as JSON in meta.sqlite (ValueError, naming the file, when malformed)."""
    events = json.loads(text)
    check_shape(events, _DATES_SHAPE, f"{META} (dates)")
    return [DatedEvent(e["date"], e["event"]) for e in events]


def _check_unit_length(index_dir: Path, name: str, vectors: np.ndarray) -> None:
    """Refuse stored vectors that are not unit length, NaN and inf included: inner products with them are no
    cosines, and the scores and confidence computed from them would be garbage (in float64: 1e30 is reported
    as such, not as an overflow)."""
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
    bad = np.flatnonzero(~(np.abs(norms - 1.0) <= NORM_TOLERANCE))  # NaN compares false, so it is refused too
    if len(bad):
        raise IndexCorruptError(
            f"index at {index_dir} is damaged ({name}: {len(bad)} of {len(vectors)} vectors are not of unit length, "
            f"the first is row {bad[0]} with length {norms[bad[0]]:.3g}): rebuild it with `kb ingest`"
        )


class _Owned:
    """An array interface that keeps its memory's owner alive: an array made from it holds this as its base."""

    def __init__(self, array: np.ndarray, owner: object) -> None:
        self.__array_interface__ = array.__array_interface__
        self.owner = owner


def stored_vectors(dense: faiss.IndexFlatIP) -> np.ndarray:
    """Zero-copy: the vectors FAISS holds, as a read-only array that keeps the FAISS index alive as long as the
    array itself (or any view or slice of it) is used, whatever happens to the index's other holders."""
    if not dense.ntotal:
        return np.zeros((0, dense.d), dtype=np.float32)
    raw = faiss.rev_swig_ptr(dense.get_xb(), dense.ntotal * dense.d).reshape(dense.ntotal, dense.d)
    vectors = np.asarray(_Owned(raw, dense))
    vectors.flags.writeable = False
    return vectors
