"""ASGI middleware that must see a request before the framework does: body limits and arrival time."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import error_response

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


class StampArrival:
    """Note when a request arrived (scope["kb.arrived"], monotonic seconds), before it waits for the event loop
    or a thread, so deadlines such as WeChat's 5 s are measured from arrival, not from when a handler runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault(ARRIVED, time.monotonic())
        await self.app(scope, receive, send)
