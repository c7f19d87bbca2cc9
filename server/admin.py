"""Staff endpoints, behind a bearer key (disabled when no key is configured): add or remove a document, list
and add the questions attached to its passages (its sidecar, ingest/questions.py), reload the index, read the
question log.

Adding and removing re-ingest the corpus in the background (one job at a time; unchanged passages keep their
vectors, so it takes seconds) and then swap the new index in; until then the old one keeps answering.
A removed or replaced file is moved to `corpus/.trash/`, never deleted; files that describe the corpus folder
(SOURCES.md, README.md) cannot be uploaded over.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
import time
import unicodedata
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from ingest.build import NOT_DOCUMENTS
from ingest.questions import SidecarError, attach, parse_question, sidecar_path
from ingest.read import SUPPORTED_SUFFIXES, UnreadableFileError, read_source
from server.api import state
from server.errors import ApiError
from server.querylog import QueryLogError
from server.service import ServiceState

ADMIN_PREFIX = "/api/admin"
UPLOAD_PATH = f"{ADMIN_PREFIX}/documents"
MAX_FILENAME_CHARS = 120
_SIDECAR_LOCK = threading.Lock()  # one question appended at a time: no line is lost to a concurrent write


def checked_filename(name: str) -> str:
    """A plain file name of a supported type: no folders, no hidden files, no tricks."""
    if (not name or name != Path(name).name or name.startswith(".") or "\\" in name
            or len(name) > MAX_FILENAME_CHARS or any(unicodedata.category(c) in ("Cc", "Cf") for c in name)):
        raise ApiError(400, "bad_filename", "文件名不合法")
    if name.casefold() in {n.casefold() for n in NOT_DOCUMENTS}:
        raise ApiError(400, "reserved_filename", f"{name} 是知识库目录的说明文件，不能作为文档上传")
    if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ApiError(400, "unsupported_type", f"只支持 {'、'.join(sorted(SUPPORTED_SUFFIXES))} 文件")
    return name


def check_readable(name: str, content: bytes) -> None:
    """Read the upload before it touches the corpus, so a broken file is refused with its reason."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(content)
        try:
            read_source(path)
        except UnreadableFileError as exc:
            raise ApiError(400, "unreadable_document", f"无法读取该文件: {exc}") from exc


def to_trash(path: Path) -> Path:
    """Move a corpus file to the corpus folder's .trash/ under a time-stamped name; staff can restore it."""
    trash = path.parent / ".trash"
    trash.mkdir(exist_ok=True)
    target = trash / f"{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns() % 10**6:06d}-{path.name}"
    path.rename(target)
    return target


def source_in_corpus(service: ServiceState, doc_id: str) -> Path:
    """The file a document was ingested from, which must lie in the corpus folder."""
    document = service.kb.document(doc_id)
    corpus = service.settings.corpus_dir.resolve()
    source = (corpus / document.source).resolve()
    if corpus not in source.parents or not source.is_file():
        raise ApiError(409, "not_in_corpus", "该文档的源文件不在知识库目录中")
    return source


def append_question(sidecar: Path, row: dict) -> None:
    """Append one line to a sidecar, atomically: the file is either as before or has the new line."""
    line = json.dumps(row, ensure_ascii=False) + "\n"
    with _SIDECAR_LOCK:
        before = sidecar.read_bytes() if sidecar.is_file() else b""
        if before and not before.endswith(b"\n"):
            before += b"\n"
        staging = sidecar.with_name(f".{sidecar.name}.writing")
        staging.write_bytes(before + line.encode("utf-8"))
        staging.replace(sidecar)


def create_admin_router() -> APIRouter:
    # The key is checked before this router sees a request, body unread: server.middleware.AdminKeyFirst.
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["admin"])

    @router.post("/documents", status_code=202)
    async def add_document(request: Request, filename: str = Query(..., description="文件名，如 村规民约.docx"),
                           service: ServiceState = Depends(state)) -> dict:
        """Body: the file's bytes. Replaces a file of the same name"""
        name = checked_filename(filename)
        content = await request.body()
        if not content:
            raise ApiError(400, "empty_file", "文件是空的")
        await run_in_threadpool(check_readable, name, content)
        target = service.settings.corpus_dir / name
        staging = target.with_name(f".{name}.uploading")
        staging.write_bytes(content)
        replaced = to_trash(target) if target.exists() else None
        staging.replace(target)

        def add() -> str:
            """Re-ingest with the new file; if that fails, the corpus goes back to what it was."""
            try:
                return service.rebuild()
            except BaseException:
                to_trash(target)
                if replaced is not None:
                    replaced.rename(target)
                raise

        return service.jobs.submit(f"add {name}", add).to_dict()

    @router.delete("/documents/{doc_id}", status_code=202)
    def remove_document(doc_id: str, service: ServiceState = Depends(state)) -> dict:
        """remove a document (its file goes to `corpus/.trash/`) and re-ingest"""
        title = service.kb.document(doc_id).title
        to_trash(source_in_corpus(service, doc_id))
        return service.jobs.submit(f"remove {title}", service.rebuild).to_dict()

    @router.get("/documents/{doc_id}/questions")
    def questions(doc_id: str, service: ServiceState = Depends(state)) -> dict:
        """the questions attached to a document's passages (关联问题), as indexed"""
        return {"doc_id": doc_id, "questions": service.kb.attached_questions(doc_id)}

    @router.post("/documents/{doc_id}/questions", status_code=202)
    async def add_question(doc_id: str, request: Request, service: ServiceState = Depends(state)) -> dict:
        """Body: {"q": "…", "articles": [34]} (or "contains": a snippet of a passage without articles).
        Appends it to the document's sidecar and re-ingests."""
        try:
            raw = json.loads(await request.body())
        except ValueError as exc:
            raise ApiError(400, "bad_json", "请求体不是合法的 JSON") from exc
        try:
            question = parse_question(raw, "问题")
        except SidecarError as exc:
            raise ApiError(400, "bad_question", str(exc)) from exc
        source = source_in_corpus(service, doc_id)
        _, unattached = attach([question], service.kb.document_chunks(doc_id), service.kb.document(doc_id).source)
        if unattached:
            raise ApiError(400, "no_such_passage", str(unattached[0]).split(": ", 1)[-1])
        await run_in_threadpool(append_question, sidecar_path(source), question.to_json())
        return service.jobs.submit(f"question for {service.kb.document(doc_id).title}", service.rebuild).to_dict()

    @router.get("/jobs/{job_id}")
    def job(job_id: str, service: ServiceState = Depends(state)) -> dict:
        """the state of a background job (adding or removing a document)"""
        found = service.jobs.get(job_id)
        if found is None:
            raise ApiError(404, "not_found", "没有这个任务")
        return found.to_dict()

    @router.post("/reload")
    async def reload(service: ServiceState = Depends(state)) -> dict:
        """swap in the index on disk (after `kb ingest`) without dropping requests"""
        started = time.perf_counter()
        kb = await run_in_threadpool(service.reload)
        return {"status": "reloaded", "documents": len(kb.documents), "chunks": kb.passage_count(),
                "seconds": round(time.perf_counter() - started, 2)}

    @router.get("/unanswered")
    def unanswered(limit: int = Query(50, ge=1, le=500), service: ServiceState = Depends(state)) -> dict:
        """questions not answered or rated unhelpful, most frequent first"""
        service.log.flush(timeout_s=1.0)  # what was just asked, if the log keeps up
        try:
            return {"questions": service.log.reader().unanswered(limit)}
        except (QueryLogError, sqlite3.Error) as exc:
            raise ApiError(503, "log_unavailable", "问题日志暂时无法读取，请稍后再试") from exc

    return router
