"""The JSON API (what a web page or a WeChat mini-program's `wx.request` calls). Translation only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from kb.knowledge_base import MAX_TOP_K, KnowledgeBase
from server.errors import ApiError
from server.state import ServiceState

MAX_ANSWER_PASSAGES = 10


class AskRequest(BaseModel):
    question: str = Field(..., description="问题")
    top_k: int | None = Field(None, ge=1, le=MAX_ANSWER_PASSAGES, description="参考的段落数")
    filters: dict[str, Any] | None = Field(None, description="doc_kind / doc_id / title_contains")


class FeedbackRequest(BaseModel):
    question_id: str = Field(..., min_length=1, max_length=64)
    helpful: bool
    comment: str | None = Field(None, max_length=1000)


def state(request: Request) -> ServiceState:
    return request.app.state.service


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def rate_limited(request: Request, service: ServiceState = Depends(state)) -> None:
    wait = service.rate_limiter.check(client_key(request))
    if wait is not None:
        raise ApiError(429, "rate_limited", "请求太频繁，请稍后再试", {"Retry-After": str(int(wait))})


def checked_question(text: str, service: ServiceState) -> str:
    question = (text or "").strip()
    if not question:
        raise ApiError(400, "empty_question", "问题不能为空")
    limit = service.settings.server.max_question_chars
    if len(question) > limit:
        raise ApiError(400, "question_too_long", f"问题太长了，请控制在{limit}字以内")
    return question


def answer_and_log(service: ServiceState, question: str, client: str, channel: str,
                   top_k: int | None = None, filters: dict | None = None) -> dict:
    """Answer, then log question, answer and latency (personal data masked) for staff review."""
    answer = service.kb.ask(question, filters=filters, passages=top_k)
    question_id = service.query_log.record(
        question=question, answer=answer.answer, answerable=answer.answerable, confidence=answer.confidence,
        citations=[c.hit.citation for c in answer.citations], latency_ms=answer.took_ms, client=client,
        channel=channel,
    )
    return {"question_id": question_id, **answer.to_dict()}


def document_summary(kb: KnowledgeBase, doc_id: str) -> dict:
    doc = kb.document(doc_id)
    articles = {c.article_no for c in kb.document_chunks(doc_id) if c.article_no is not None}
    return {"doc_id": doc.doc_id, "title": doc.title, "kind": doc.kind, "date": doc.doc_date,
            "articles": len(articles), "source": doc.source}


def create_api_router() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["service"])
    def healthz() -> dict:
        return {"status": "ok"}

    @router.get("/readyz", tags=["service"])
    def readyz(service: ServiceState = Depends(state)) -> dict:
        kb = service.kb
        return {"status": "ready", "documents": len(kb.documents), "chunks": len(kb.chunks),
                "model": kb.embedder.model_id}

    @router.post("/api/ask", tags=["questions"], dependencies=[Depends(rate_limited)])
    async def ask(body: AskRequest, request: Request, service: ServiceState = Depends(state)) -> dict:
        question = checked_question(body.question, service)
        return await run_in_threadpool(answer_and_log, service, question, client_key(request), "api",
                                       body.top_k, body.filters)

    @router.get("/api/search", tags=["questions"], dependencies=[Depends(rate_limited)])
    async def search(q: str = Query(..., description="问题"), top_k: int = Query(5, ge=1, le=MAX_TOP_K),
                     service: ServiceState = Depends(state)) -> dict:
        question = checked_question(q, service)
        hits = await run_in_threadpool(service.kb.search, question, top_k)
        return {"query": question, "hits": [h.to_dict() for h in hits]}

    @router.get("/api/documents", tags=["documents"], dependencies=[Depends(rate_limited)])
    def documents(service: ServiceState = Depends(state)) -> dict:
        kb = service.kb
        return {"documents": [document_summary(kb, doc_id) for doc_id in kb.documents]}

    @router.get("/api/documents/{doc_id}", tags=["documents"], dependencies=[Depends(rate_limited)])
    def document(doc_id: str, service: ServiceState = Depends(state)) -> dict:
        kb = service.kb
        doc = kb.document(doc_id)
        anchors = [{"article": c.article, "article_no": c.article_no, "section": c.section, "part": c.part,
                    "start": c.start, "end": c.end} for c in kb.document_chunks(doc_id) if c.article_no is not None]
        return {**document_summary(kb, doc_id), "dates": [d.__dict__ for d in doc.dates], "text": doc.text,
                "articles_index": anchors}

    @router.get("/api/documents/{doc_id}/articles/{article_no}", tags=["documents"],
                dependencies=[Depends(rate_limited)])
    def article(doc_id: str, article_no: int, service: ServiceState = Depends(state)) -> dict:
        return service.kb.article(doc_id, article_no).to_dict()

    @router.post("/api/feedback", tags=["questions"], dependencies=[Depends(rate_limited)])
    def feedback(body: FeedbackRequest, service: ServiceState = Depends(state)) -> dict:
        if not service.query_log.add_feedback(body.question_id, body.helpful, body.comment):
            raise ApiError(404, "unknown_question", "找不到这个问题记录")
        return {"status": "ok"}

    return router
