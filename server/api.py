"""The JSON API (what a web page or a WeChat mini-program's `wx.request` calls). Translation only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from anyio import from_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from kb.answers.notice import station_name
from kb.config import KB_NAME_RE
from kb.knowledge_base import MAX_TOP_K, KnowledgeBase
from kb.search.conversation import MAX_HISTORY
from kb.text.dates import effective_date, published_date
from server.clients import client_address, holds_key
from server.conversations import MAX_TOKEN_CHARS
from server.errors import ApiError
from server.service import ServiceState, checked_text

MAX_ANSWER_PASSAGES = 10


#: Which knowledge base of a Milvus store (one deployment serving many townships); this service's own if absent.
KB_PATTERN = f"^{KB_NAME_RE.pattern}$"
KB_DESCRIPTION = "知识库名称（KB_STORE=milvus 时一个部署可服务多个乡镇；不传则为本服务的 KB_NAME）"
#: The knowledge base named in a request body (default None: `kb: KbName = None`).
KbName = Annotated[str | None, Field(min_length=1, max_length=64, pattern=KB_PATTERN, description=KB_DESCRIPTION)]
#: The same, named in a query string (`?kb=`).
KbQuery = Annotated[str | None, Query(min_length=1, max_length=64, pattern=KB_PATTERN, description=KB_DESCRIPTION)]


class StrictModel(BaseModel):
    """Request bodies: types as declared ("yes" is not a boolean, "5" not a number)."""

    model_config = ConfigDict(strict=True)


class SearchFilters(StrictModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    doc_kind: Literal["law", "report", "other"] | None = Field(None, description="文档类别")
    doc_id: str | None = Field(None, max_length=64, description="只在这个文档中查找")
    doc_ids: list[str] | None = Field(None, max_length=100, description="只在这些文档中查找")
    title_contains: str | None = Field(None, max_length=100, description="标题包含的文字")
    date_from: str | None = Field(None, pattern=r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$",
                                  description="文档日期（最近一次公布或修订；报告的年份）不早于，如 2020 或 2020-06-01")
    date_to: str | None = Field(None, pattern=r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$", description="文档日期不晚于")


class AskRequest(StrictModel):
    question: str = Field(..., description="问题")
    top_k: int | None = Field(None, ge=1, le=MAX_ANSWER_PASSAGES, description="参考的段落数")
    filters: SearchFilters | None = Field(None, description="只在部分文档中查找")
    history: list[str] | None = Field(
        None, max_length=MAX_HISTORY,
        description="同一对话中之前的问题（从早到晚），用于理解追问，如「那要是不满意呢？」")
    conversation_id: str | None = Field(
        None, min_length=1, max_length=MAX_TOKEN_CHARS, pattern=r"^[0-9A-Za-z_-]+$",
        description="上一次回答返回的对话编号：带有该对话最近的问题（已隐去个人信息），几分钟内有效"
                    "（不传 history 时使用）；只有得到它的客户端可以使用，其他编号会开始新的对话")
    kb: KbName = None


class FeedbackRequest(StrictModel):
    question_id: str = Field(..., min_length=1, max_length=64)
    helpful: bool
    comment: str | None = Field(None, max_length=1000)


def state(request: Request) -> ServiceState:
    return request.app.state.service


def client_key(request: Request) -> str:
    return client_address(request, state(request).proxies)


T = TypeVar("T")


async def admitted(request: Request, work: Callable[[], T]) -> T:
    """`work()` in a worker thread once the service admits it (server/admission.py): a fast 503 when too many
    wait, nothing done for a client that left while it waited."""

    def gone() -> bool:
        return from_thread.run(request.is_disconnected)

    return await run_in_threadpool(state(request).admission.run, work, gone)


def rate_limited(request: Request, service: ServiceState = Depends(state)) -> None:
    """A request that is not a question (search, documents, contacts, feedback) pays its one token."""
    service.admit_request(client_key(request))


def document_summary(kb: KnowledgeBase, doc_id: str) -> dict:
    doc = kb.document(doc_id)
    articles = {c.article_no for c in kb.document_chunks(doc_id) if c.article_no is not None}
    published = published_date(doc)
    return {"doc_id": doc.doc_id, "title": doc.title, "kind": doc.kind, "date": doc.doc_date,
            "published": published, "effective": effective_date(doc, published),
            "articles": len(articles), "source": doc.source}


def create_api_router() -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", tags=["service"])
    def healthz() -> dict:
        """liveness: answers as soon as the server runs"""
        return {"status": "ok"}

    @router.get("/readyz", tags=["service"])
    def readyz(request: Request, service: ServiceState = Depends(state)) -> dict:
        """Ready once the index and the model are loaded and the store answers; `query_log.ok` says whether
        questions are being logged. With the admin key: where the index and the log are, and why the log fails.
        503 `store_unavailable` (with Retry-After) while Milvus cannot be reached; `/healthz` stays 200 meanwhile"""
        kb = service.kb
        kb.store.ping()  # StoreUnavailableError → 503 store_unavailable (server/errors.py)
        details = holds_key(request, service.config.admin_key)
        store = kb.store.describe()
        return {"status": "ready", "documents": len(kb.documents), "chunks": kb.passage_count(),
                "model": kb.embedder.model_id, "store": store if details else {"store": store["store"]},
                "query_log": service.log.health(details)}

    @router.post("/api/ask", tags=["questions"])
    async def ask(body: AskRequest, request: Request, service: ServiceState = Depends(state)) -> dict:
        """the answer object + `question_id` (for feedback) + `conversation_id` (send it back with the next
        question, or send `history`, so that a follow-up is understood)"""
        filters = body.filters.model_dump(exclude_none=True) if body.filters else None
        question = service.admit(body.question, client_key(request), history=body.history, token=body.conversation_id)
        answer = await admitted(request, lambda: service.answer(question, "api", top_k=body.top_k, filters=filters,
                                                                kb_name=body.kb))
        return {**answer, "conversation_id": service.conversation_token(question)}

    @router.get("/api/search", tags=["questions"], dependencies=[Depends(rate_limited)])
    async def search(request: Request, q: str = Query(..., description="问题"),
                     top_k: int = Query(5, ge=1, le=MAX_TOP_K), kb: KbQuery = None,
                     service: ServiceState = Depends(state)) -> dict:
        """`{"query": ..., "hits": [...]}`: the best passages, without composing an answer."""
        if "\ufffd" in q:  # what the framework makes of bytes that are not UTF-8: refused, not searched
            raise ApiError(400, "invalid_text", "问题中含有无效的字符（请使用 UTF-8 编码）")
        question = service.checked_question(q)
        knowledge_base = await run_in_threadpool(service.knowledge_base, kb)
        hits = await admitted(request, lambda: knowledge_base.search(question, top_k))
        return {"query": question, "hits": [h.to_dict() for h in hits]}

    @router.get("/api/contacts", tags=["service"], dependencies=[Depends(rate_limited)])
    def contacts(kb: KbQuery = None, service: ServiceState = Depends(state)) -> dict:
        """the knowledge base's township (the page's title), where a person helps: its legal service station
        (set at ingest, else KB_TOWNSHIP, KB_HELP_*); 12348; and the page's example questions (KB_EXAMPLES)"""
        identity = service.knowledge_base(kb).identity
        return {"township": identity.township, "name": station_name(identity), "phone": identity.help_phone,
                "address": identity.help_address, "hours": identity.help_hours, "hotline": "12348",
                "examples": identity.example_questions}

    @router.get("/api/documents", tags=["documents"], dependencies=[Depends(rate_limited)])
    def documents(kb: KbQuery = None, service: ServiceState = Depends(state)) -> dict:
        """Title, kind, date and number of articles of every document. `date`: the latest promulgation or revision
        date (a report: its year). The labelled dates, each `{"date": "yyyy-mm-dd", "event", "label"}` or null,
        only what the document states: `published`, the header line `date` is taken from (`label` the line's own
        word: 公布, 发布, 通过, 修正 or 修订, else 日期; 信访工作条例: 发布 2022-02-25, 宪法: 修正 2018-03-11);
        `effective`, when that text entered into force (`label` 施行: a 施行 line of the header, or the text's
        「本法自……起施行」, never one before `published`; 民法典: 施行 2021-01-01). A report has neither."""
        knowledge_base = service.knowledge_base(kb)
        return {"documents": [document_summary(knowledge_base, doc_id) for doc_id in knowledge_base.documents]}

    @router.get("/api/documents/{doc_id}", tags=["documents"], dependencies=[Depends(rate_limited)])
    def document(doc_id: str, kb: KbQuery = None, service: ServiceState = Depends(state)) -> dict:
        """full text with an index of article positions"""
        knowledge_base = service.knowledge_base(kb)
        doc = knowledge_base.document(doc_id)
        anchors = [{"article": c.article, "article_no": c.article_no, "section": c.section, "part": c.part,
                    "start": c.start, "end": c.end}
                   for c in knowledge_base.document_chunks(doc_id) if c.article_no is not None]
        return {**document_summary(knowledge_base, doc_id), "dates": [d.__dict__ for d in doc.dates], "text": doc.text,
                "articles_index": anchors}

    @router.get("/api/documents/{doc_id}/articles/{article_no}", tags=["documents"],
                dependencies=[Depends(rate_limited)])
    def article(doc_id: str, article_no: int, kb: KbQuery = None,
                service: ServiceState = Depends(state)) -> dict:
        """one article as a hit"""
        return service.knowledge_base(kb).article(doc_id, article_no).to_dict()

    @router.post("/api/feedback", tags=["questions"], dependencies=[Depends(rate_limited)])
    def feedback(body: FeedbackRequest, service: ServiceState = Depends(state)) -> dict:
        """whether an answer helped; staff see it in `kb report unanswered`"""
        comment = None if body.comment is None else checked_text(body.comment, "意见")
        verdict = service.log.feedback(body.question_id, body.helpful, comment)
        if verdict == "unknown":
            raise ApiError(404, "unknown_question", "找不到这个问题记录")
        if verdict == "log_down":  # kept in the writer's queue: written when the log works again
            raise ApiError(503, "log_unavailable", "反馈已暂存，问题日志恢复后写入", {"Retry-After": "60"})
        return {"status": "ok"}

    return router
