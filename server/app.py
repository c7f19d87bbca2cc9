"""The HTTP API over the library. It translates requests to `KnowledgeBase` calls and errors to JSON."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from kb.config import Settings
from kb.errors import KnowledgeBaseError
from kb.knowledge_base import MAX_TOP_K, KnowledgeBase, QueryError

log = logging.getLogger(__name__)
MAX_QUERY_CHARS = 500


def create_app(kb: KnowledgeBase) -> FastAPI:
    app = FastAPI(title="政务知识库问答 API", version="0.1.0")
    app.state.kb = kb

    @app.exception_handler(KnowledgeBaseError)
    async def _known_error(_: Request, exc: KnowledgeBaseError) -> JSONResponse:
        status = 400 if isinstance(exc, QueryError) else 503
        return JSONResponse({"error": {"code": type(exc).__name__, "message": str(exc)}}, status_code=status)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> dict:
        return {"status": "ready", "chunks": len(app.state.kb.chunks), "documents": len(app.state.kb.documents)}

    @app.get("/api/search")
    def search(q: str = Query(..., max_length=MAX_QUERY_CHARS, description="问题"),
               top_k: int = Query(5, ge=1, le=MAX_TOP_K)) -> dict:
        hits = app.state.kb.search(q, top_k=top_k)
        return {"query": q, "hits": [h.to_dict() for h in hits]}

    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Build what is missing (model, index), load once, then serve."""
    import uvicorn

    from ingest.build import ensure_index

    ensure_index(settings, progress=True)
    kb = KnowledgeBase.open(settings=settings)
    log.warning("知识库已就绪: %d 个文档, %d 个片段; http://%s:%d/docs", len(kb.documents), len(kb.chunks), host, port)
    uvicorn.run(create_app(kb), host=host, port=port)
