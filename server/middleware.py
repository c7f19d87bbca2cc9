"""ASGI middleware that must see a request before the framework does: body limits and arrival time."""

from __future__ import annotations

import time

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.clients import Network, client_address, holds_key
from server.errors import error_response
from server.ratelimit import RateLimiter

#: The scope key StampArrival sets: when the request arrived (time.monotonic()).
ARRIVED = "kb.arrived"


class BodySizeLimit:
    """Refuse bodies over the limit (413) before the endpoint sees them, whether or not Content-Length is sent.

    A body without a declared length (chunked) is read here, up to the limit, and then handed on: the framework
    turns errors raised while it reads a body into 400, so the limit must be enforced before it reads."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int, upload_path: str) -> None:
        self.app, self.max_bytes, self.upload_bytes, self.upload_path = app, max_bytes, upload_bytes, upload_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_bytes if scope.get("path") == self.upload_path else self.max_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                return await error_response(413, "payload_too_large", "请求内容过大")(scope, receive, send)
            return await self.app(scope, receive, send)
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > limit:
                return await error_response(413, "payload_too_large", "请求内容过大")(scope, receive, send)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


class AdminKeyFirst:
    """Staff routes check the key before a byte of the body is read: an unauthenticated upload is refused at its
    headers instead of being buffered (20 MB a connection). Failed keys are rate-limited per client, so the key
    cannot be guessed at the speed of the network."""

    def __init__(self, app: ASGIApp, prefix: str, key: str, proxies: tuple[Network, ...],
                 failures_per_minute: float = 10, burst: int = 10) -> None:
        self.app, self.prefix, self.key, self.proxies = app, prefix, key, proxies
        self.failures = RateLimiter(failures_per_minute, burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefix):
            return await self.app(scope, receive, send)
        if not self.key:
            response = error_response(403, "admin_disabled", "管理接口未启用（未配置 KB_ADMIN_KEY）")
            return await response(scope, receive, send)
        connection = HTTPConnection(scope)
        if holds_key(connection, self.key):
            return await self.app(scope, receive, send)
        wait = self.failures.check(client_address(connection, self.proxies))
        response = (error_response(401, "unauthorized", "需要有效的管理密钥", {"WWW-Authenticate": "Bearer"})
                    if wait is None else
                    error_response(429, "rate_limited", "管理密钥错误次数太多，请稍后再试", {"Retry-After": str(wait)}))
        await response(scope, receive, send)


class NoSniff:
    """Every response says `X-Content-Type-Options: nosniff`: a browser never reads an answer's JSON (which
    quotes what a client sent) or an error as HTML or script."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_header)


class StampArrival:
    """Note when a request arrived (scope["kb.arrived"], monotonic seconds), before it waits for the event loop
    or a thread, so deadlines such as WeChat's 5 s are measured from arrival, not from when a handler runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault(ARRIVED, time.monotonic())
        await self.app(scope, receive, send)
