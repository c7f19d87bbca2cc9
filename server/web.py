"""The citizen-facing web page: one static HTML page, its script and its style, under a strict CSP.

`mount_web(app)` adds `GET /` (the page) and `GET /static/<file>` (files of server/web/). It is safe to call
more than once on the same app: later calls do nothing.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

from server.errors import ApiError

WEB_DIR = Path(__file__).resolve().parent / "web"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}


def _file(name: str) -> FileResponse:
    # Only plain file names that exist directly in server/web/ (no sub-folders, no "..", no hidden files).
    path = WEB_DIR / name
    if "/" in name or "\\" in name or name.startswith(".") or path.suffix not in _MEDIA_TYPES or not path.is_file():
        raise ApiError(404, "not_found", "找不到请求的内容")
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


def mount_web(app: FastAPI) -> None:
    """Serve the page at `/` and its assets at `/static/...`. Idempotent."""
    if getattr(app.state, "web_mounted", False):
        return
    app.state.web_mounted = True

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)  # HEAD: uptime checks
    def index() -> FileResponse:
        return _file("index.html")

    @app.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    def static(name: str) -> FileResponse:
        return _file(name)
