"""The FastAPI service: wires the JSON API, the OpenAI-compatible endpoint, WeChat and the chat page to one
ServiceState, and runs it with uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from kb.config import Settings
from server.admin import ADMIN_PREFIX, UPLOAD_PATH, create_admin_router
from server.api import create_api_router
from server.clients import parse_networks
from server.errors import ApiError, install_error_handlers
from server.logs import mask_access_log
from server.middleware import AdminKeyFirst, BodySizeLimit, NoSniff, StampArrival
from server.openai_compat import create_openai_router
from server.reply import reply_text
from server.service import ServiceState, open_service
from server.settings import ServerSettings
from server.shared import SharedDatabase
from server.web import mount_web

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)


WeChatAnswerer = Callable[[str, str], str]


def wechat_conversation(user: str) -> str:
    """The service's key for a WeChat user (OpenID): their rate limit and their conversation."""
    return f"wechat:{user}"


def wechat_answerer(service: ServiceState) -> WeChatAnswerer:
    """WeChat's way in: the same ServiceState.ask as every channel, rate-limited per user (OpenID); a refusal
    (too fast, too long) becomes the text WeChat shows."""

    def answer_text(question: str, user: str) -> str:
        try:
            # Each user's last questions are kept a few minutes, so a follow-up is understood.
            key = wechat_conversation(user)
            return reply_text(service.ask(question, "wechat", key, conversation=key))
        except ApiError as refusal:
            return refusal.message

    return answer_text


def build_app(config: ServerSettings, answer_wechat: WeChatAnswerer | None = None,
              start_over_wechat: Callable[[str], None] | None = None,
              shared: SharedDatabase | None = None) -> FastAPI:
    """The application's routes and middleware for these settings; `create_app` attaches a service to it (and
    the database its replicas share, if any).

    Separate so that the OpenAPI description (and the README's HTTP table) can be produced without loading a
    model or an index."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service = getattr(app.state, "service", None)
        if service is not None:
            service.close()

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, which an offline government machine
    # cannot reach and which would run third-party code on the API's origin. /openapi.json describes the API.
    app = FastAPI(title="政务知识库问答 API", version="0.3.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="信访工作条例、常用法律法规和本镇法治政府建设报告的问答与检索。")
    install_error_handlers(app)
    app.include_router(create_api_router())
    app.include_router(create_openai_router())
    app.include_router(create_admin_router())
    mount_web(app)
    if config.wechat_token:
        from server.wechat import WeChatConfig, create_wechat_router

        wechat = WeChatConfig(config.wechat_token, config.wechat_app_id, config.wechat_aes_key)
        app.include_router(create_wechat_router(wechat, answer_wechat or (lambda question, user: ""),
                                                start_over_wechat, shared))
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "Authorization"])
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes, upload_bytes=config.max_upload_bytes,
                       upload_path=UPLOAD_PATH)
    app.add_middleware(AdminKeyFirst, prefix=ADMIN_PREFIX, key=config.admin_key,
                       proxies=parse_networks(config.trusted_proxies))
    app.add_middleware(NoSniff)
    app.add_middleware(StampArrival)
    return app


def create_app(service: ServiceState) -> FastAPI:
    """The service's application: routes, middleware, and the ServiceState every request uses (closed on exit)."""
    app = build_app(service.config, wechat_answerer(service),
                    lambda user: service.conversations.forget(wechat_conversation(user)), service.shared)
    app.state.service = service
    return app


def uvicorn_config(app: FastAPI, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """How the service runs, in production and in the tests alike: the client address is the TCP peer (trusted
    proxies are our decision, server/clients.py, not uvicorn's), and the access log never shows a query string."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, proxy_headers=False, log_level=log_level)
    mask_access_log()  # after uvicorn.Config, which (re)configures uvicorn's loggers
    return config


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Build what is missing (model, index), load once, then serve."""
    import uvicorn

    from ingest.build import ensure_index

    config = ServerSettings()  # a bad setting is refused before minutes of building
    ensure_index(settings, progress=True)
    service = open_service(settings, config)
    kb = service.kb
    log.warning("知识库已就绪: %d 个文档, %d 个片段; http://%s:%d/ (API: /openapi.json)", len(kb.documents),
                kb.passage_count(), host, port)
    uvicorn.Server(uvicorn_config(create_app(service), host, port)).run()
