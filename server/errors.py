"""Every error a client can see: a status, a machine-readable code and a Chinese message. Never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb.errors import KnowledgeBaseError, QueryError, StoreUnavailableError, UnknownDocumentError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: ("malformed_json", "请求体不是有效的 JSON"),  # the framework's only 400: a body it cannot parse
    401: ("unauthorized", "需要有效的管理密钥"),
    403: ("forbidden", "没有权限"),
    404: ("not_found", "找不到请求的内容"),
    405: ("method_not_allowed", "不支持这种请求方法"),
    413: ("payload_too_large", "请求内容过大"),
    429: ("rate_limited", "请求太频繁，请稍后再试"),
    503: ("unavailable", "服务暂时不可用"),
}

#: How long a client should wait before asking again when the store (Milvus) cannot be reached.
STORE_RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An error raised by our own endpoints, already phrased for the client."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class ClientGone(Exception):
    """The client disconnected while its question waited for a turn: nothing was done, nobody to answer."""


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return "malformed_json", "请求体不是有效的 JSON"
    fields = "、".join(".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body" for e in errors[:3])
    return "invalid_request", f"请求参数不正确: {fields}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(ClientGone)
    async def _gone(_: Request, exc: ClientGone) -> JSONResponse:
        return error_response(503, "client_gone", "客户端已断开")

    @app.exception_handler(QueryError)
    async def _query_error(_: Request, exc: QueryError) -> JSONResponse:
        return error_response(400, "invalid_question", str(exc))

    @app.exception_handler(UnknownDocumentError)
    async def _unknown(_: Request, exc: UnknownDocumentError) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(StoreUnavailableError)
    async def _store_unavailable(_: Request, exc: StoreUnavailableError) -> JSONResponse:
        log.warning("store unavailable: %s", exc)  # Milvus down or restarting: the next requests may succeed
        return error_response(503, "store_unavailable", "知识库存储暂时无法连接（可能正在重启），请稍后再试",
                              {"Retry-After": str(STORE_RETRY_AFTER_SECONDS)})

    @app.exception_handler(KnowledgeBaseError)
    async def _knowledge_base(_: Request, exc: KnowledgeBaseError) -> JSONResponse:
        log.error("knowledge base unavailable: %s", exc)
        return error_response(503, "unavailable", "知识库暂时不可用，请稍后再试")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        code, message = _validation_message(exc)
        return error_response(400 if code == "malformed_json" else 422, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = _HTTP_CODES.get(exc.status_code, ("http_error", "请求失败"))
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", "服务器内部错误，请稍后再试")
