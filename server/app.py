"""The FastAPI service: wires the JSON API, the OpenAI-compatible endpoint and WeChat to one knowledge base."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from kb.answer import reply_text
from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.querylog import QueryLog
from server.admin import UPLOAD_PATH, create_admin_router
from server.api import answer_and_log, create_api_router
from server.errors import error_response, install_error_handlers
from server.openai_compat import create_openai_router
from server.state import ServiceState
from server.web import mount_web

log = logging.getLogger(__name__)


class BodySizeLimit:
    """Refuse bodies over the limit before reading them whole (413), whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int) -> None:
        self.app, self.max_bytes, self.upload_bytes = app, max_bytes, upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_bytes if scope.get("path") == UPLOAD_PATH else self.max_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await error_response(413, "payload_too_large", "请求内容过大")(scope, receive, send)
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await error_response(413, "payload_too_large", "请求内容过大")(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(service: ServiceState) -> FastAPI:
    app = FastAPI(title="政务知识库问答 API", version="0.2.0",
                  description="信访工作条例、常用法律法规和本镇法治政府建设报告的问答与检索。")
    app.state.service = service
    install_error_handlers(app)
    app.include_router(create_api_router())
    app.include_router(create_openai_router())
    app.include_router(create_admin_router())
    mount_web(app)
    server = service.settings.server
    if server.wechat_token:
        from server.wechat import WeChatConfig, create_wechat_router

        config = WeChatConfig(server.wechat_token, server.wechat_app_id, server.wechat_aes_key)
        app.include_router(create_wechat_router(
            config, lambda question: reply_text(answer_and_log(service, question, "wechat", "wechat"))))
    if server.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(server.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization"])
    app.add_middleware(BodySizeLimit, max_bytes=server.max_body_bytes, upload_bytes=server.max_upload_bytes)
    return app


def open_service(settings: Settings, kb: KnowledgeBase | None = None) -> ServiceState:
    settings.server.query_log.parent.mkdir(parents=True, exist_ok=True)
    return ServiceState(settings, kb or KnowledgeBase.open(settings=settings), QueryLog.open(settings.server.query_log))


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Build what is missing (model, index), load once, then serve."""
    import uvicorn

    from ingest.build import ensure_index

    ensure_index(settings, progress=True)
    service = open_service(settings)
    kb = service.kb
    log.warning("知识库已就绪: %d 个文档, %d 个片段; http://%s:%d/docs", len(kb.documents), len(kb.chunks), host, port)
    uvicorn.run(create_app(service), host=host, port=port)
