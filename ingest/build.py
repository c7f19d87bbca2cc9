"""The whole ingest: files → read → parse → chunk → embed → indexes, published atomically.

A file that cannot be read is reported by name with the reason and skipped; the rest still builds. So is a bad
line of a document's question sidecar (ingest/questions.py): its file and line are reported, the rest is indexed.
The knowledge base's identity (its township, help station …) is kept, or changed by a kb.toml or the ingest's
options (ingest/identity.py); a kb.toml that is wrong stops the ingest before anything is read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ingest.chunk import chunk_document, indexing_text
from ingest.embed import embed_with_reuse, open_vector_cache, question_key
from ingest.identity import identity_change
from ingest.parse import parse_document
from ingest.questions import attach, is_sidecar, read_sidecar, sidecar_path
from ingest.read import SUPPORTED_SUFFIXES, UnreadableFileError, read_source
from ingest.vector_cache import text_key
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.errors import IndexMismatchError, IndexMissingError, IndexProblem, KnowledgeBaseError
from kb.schema import Chunk, Document
from kb.stores.handles import Handle, QuestionHandles, passage_key
from kb.stores.index_dir import (
    IndexContents,
    check_model,
    load_index,
    read_manifest,
    stored_identity,
    write_index,
)
from kb.text.lexical import LexicalIndex

log = logging.getLogger(__name__)

#: Files that describe a corpus folder rather than belong to it.
NOT_DOCUMENTS = frozenset({"SOURCES.md", "README.md"})
#: Passages embedded (and committed to the vector cache) per step.


class IngestError(KnowledgeBaseError):
    """Nothing could be indexed; the index in use is left as it was."""


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class IngestReport:
    index_dir: Path
    target: str = ""  # where it went: the index folder, or the Milvus address and knowledge base
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0
    reused: int = 0  # chunks whose vectors came from the index in use or the vector cache
    skipped: list[SkippedFile] = field(default_factory=list)
    questions: int = 0  # questions attached to passages (sidecars)
    question_errors: list[str] = field(default_factory=list)  # sidecar lines skipped: file, line, why


def find_files(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """(file, name it is known by in the index) for every supported file under `paths`, in a stable order."""
    found: list[tuple[Path, str]] = []
    for root in paths:
        if root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(root).parts))
            found += [(p, p.relative_to(root).as_posix()) for p in files
                      if p.suffix.lower() in SUPPORTED_SUFFIXES and p.name not in NOT_DOCUMENTS
                      and not is_sidecar(p)]
        else:
            found.append((root, root.name))  # named explicitly: unsupported types are reported, not ignored
    seen: set[str] = set()
    unique = []
    for path, name in found:
        if name in seen:
            name = path.absolute().as_posix()
        seen.add(name)
        unique.append((path, name))
    return unique


def parse_files(files: Iterable[tuple[Path, str]], settings: Settings, report: IngestReport,
                progress: bool) -> tuple[list[Document], list[Chunk], list[Handle]]:
    """Documents, their chunks, and the questions their sidecars attach to those chunks."""
    documents: list[Document] = []
    chunks: list[Chunk] = []
    handles: list[Handle] = []
    files = list(files)
    for path, name in tqdm(files, desc="读取文档", unit="file", disable=not progress):
        try:
            source = read_source(path)
        except UnreadableFileError as exc:
            report.skipped.append(SkippedFile(str(path), str(exc)))
            log.warning("skipped %s: %s", path, exc)
            continue
        parsed = parse_document(source.text, name, path.suffix.lower() == ".md")
        doc_chunks = chunk_document(parsed, settings.max_chunk_chars, settings.report_chunk_chars)
        if not doc_chunks:
            report.skipped.append(SkippedFile(str(path), "no text to index"))
            continue
        documents.append(parsed.document)
        chunks.extend(doc_chunks)
        handles += attached_questions(path, name, doc_chunks, report)
    return documents, chunks, handles


def attached_questions(document: Path, name: str, chunks: list[Chunk], report: IngestReport) -> list[Handle]:
    """The handles of a document's sidecar, if it has one; its bad lines go to the report."""
    sidecar = sidecar_path(document)
    if not sidecar.is_file():
        return []
    questions, errors = read_sidecar(sidecar)
    attached, unattached = attach(questions, chunks, name)
    report.question_errors += [str(e) for e in errors + unattached]
    handles = []
    for question, found in attached:
        for key in dict.fromkeys(passage_key(c) for c in found):
            handles.append(Handle(question.question, key[0], key[1], question.form))
    return handles


def reusable_vectors(index_dir: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    """Vectors of the index in use, by the hash of the text they embed, if the same model made them.

    Re-ingesting after adding or removing one document then embeds only what is new: seconds, not minutes.
    """
    try:
        index = load_index(index_dir)
        check_model(index.manifest, embedder.model_id, embedder.fingerprint, embedder.dimension)
    except IndexProblem:
        return {}
    vectors = index.dense.reconstruct_n(0, index.dense.ntotal) if index.dense.ntotal else []
    known = {text_key(indexing_text(index.documents[c.doc_id], c)): vectors[row] for row, c in enumerate(index.chunks)}
    if index.handles is not None:
        known.update(zip((question_key(h.question) for h in index.handles.handles), index.handles.vectors))
    return known


def build_index(documents: list[Document], chunks: list[Chunk], settings: Settings,
                embedder: Embedder | None = None, progress: bool = False, handles: Sequence[Handle] = (),
                identity: Mapping[str, str] | None = None) -> int:
    """Parsed documents → embeddings (reused where possible) + lexical index (+ question handles) → a published
    index, with the knowledge base's own `identity` values. Returns how many chunks reused a vector. Every corpus
    goes through here, the benchmark's too."""
    embedder = embedder or Embedder(settings)
    by_id = {d.doc_id: d for d in documents}
    texts = [indexing_text(by_id[c.doc_id], c) for c in chunks]
    cache = open_vector_cache(settings, embedder)
    try:
        known = reusable_vectors(settings.index_dir, embedder)
        vectors, reused = embed_with_reuse(texts, embedder, known, cache, progress)
        question_handles = None
        if handles:
            question_vectors, _ = embed_with_reuse([h.question for h in handles], embedder, known, cache, progress,
                                                   as_questions=True)
            question_handles = QuestionHandles.build(list(handles), question_vectors)
    finally:
        if cache is not None:
            cache.close()
    lexical = LexicalIndex.build(texts)
    write_index(IndexContents(documents, chunks, vectors, lexical, embedder.model_id, embedder.fingerprint,
                              question_handles, dict(identity or {})), settings.index_dir)
    return reused


def ingest(paths: Sequence[Path], settings: Settings, embedder: Embedder | None = None,
           progress: bool = False, identity: Mapping[str, str] | None = None) -> IngestReport:
    """Make the knowledge base hold exactly the documents under `paths`: a new index in settings.index_dir (the
    old one stays in use until it is complete), or with KB_STORE=milvus the changed documents of KB_NAME. Its
    identity: as stored, or as the folders' kb.toml says, with `identity` (the ingest's options) on top."""
    started = time.perf_counter()
    milvus = settings.store == "milvus"
    report = IngestReport(settings.index_dir, f"Milvus {settings.milvus_address} ({settings.kb_name})" if milvus
                          else str(settings.index_dir))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise IngestError(f"no such file or folder: {', '.join(missing)}")
    change = identity_change(paths, identity)
    documents, chunks, handles = parse_files(find_files(paths), settings, report, progress)
    if not documents:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped) or "no supported files found"
        raise IngestError(f"nothing to index ({reasons}); the existing index was not changed")
    if milvus:
        from ingest.milvus_sync import sync_to_milvus  # pymilvus is only imported by those who use it

        report.reused = sync_to_milvus(documents, chunks, settings, embedder or Embedder(settings), progress,
                                       change, handles)
    else:
        report.reused = build_index(documents, chunks, settings, embedder, progress, handles,
                                    change.applied_to(stored_identity(settings.index_dir)))
    report.questions = len(handles)
    report.documents, report.chunks = len(documents), len(chunks)
    report.seconds = time.perf_counter() - started
    return report


def ensure_index(settings: Settings, progress: bool = False) -> IngestReport | None:
    """First run, or after an upgrade: build the index from the default corpus when there is none yet, or when
    the one there was written in another format or cut by another chunker than this program's. In Milvus only
    the knowledge base named `default` is built from corpus/; another must be ingested by name."""
    try:
        if settings.store == "milvus":
            from kb.stores.milvus import MilvusStore

            store = MilvusStore.connect(settings)  # the base row says enough; open() would read every document
            try:
                store.checked_base()
            finally:
                store.close()
        else:
            read_manifest(settings.index_dir)
        return None
    except IndexMissingError:
        if settings.store == "milvus" and settings.kb_name != "default":
            raise
        log.warning("首次运行：正在从 %s 建立索引（需要几分钟）", settings.corpus_dir)
    except IndexMismatchError as exc:
        log.warning("索引需要重建（%s）：正在从 %s 重新建立", exc, settings.corpus_dir)
    return ingest([settings.corpus_dir], settings, progress=progress)
