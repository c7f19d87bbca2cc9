"""The web page's security headers and static files, without a browser, a model or an index (fast tier).

`server.app.build_app` gives the application's routes and middleware without a service; the page and its assets
are served from files, so they can be checked here with the same headers the browser tests see.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.app import build_app
from server.settings import ServerSettings
from server.web import CONTENT_SECURITY_POLICY, WEB_DIR, mount_web

#: Written out here, not imported: a change to the policy must be a deliberate change to this test too.
EXPECTED_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
ASSETS = [("/", "text/html"), ("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    # Explicit values, so that KB_* variables in the environment cannot add routes (WeChat) or CORS.
    return build_app(ServerSettings(admin_key="", cors_origins=(), wechat_token=""))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def test_the_policy_is_strict() -> None:
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "'unsafe-eval'" not in CONTENT_SECURITY_POLICY
    assert directives["frame-ancestors"] == "'none'" and directives["default-src"] == "'self'"


@pytest.mark.parametrize("path, media", ASSETS)
def test_page_and_assets_are_served_with_the_security_headers(client: TestClient, path: str, media: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert response.headers["content-security-policy"] == EXPECTED_CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    name = "index.html" if path == "/" else path.removeprefix("/static/")
    assert response.content == (WEB_DIR / name).read_bytes()
    head = client.head(path)  # uptime checks probe with HEAD
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-security-policy"] == EXPECTED_CSP


def test_the_page_loads_only_its_own_assets(client: TestClient) -> None:
    """The CSP allows no inline script or style, so the page must reference its script and style as files."""
    html = client.get("/").text
    assert 'src="/static/app.js"' in html and 'href="/static/style.css"' in html
    assert "<script>" not in html and "<style" not in html and " style=" not in html


@pytest.mark.parametrize("path", ["/static/..%2Fweb.py", "/static/..%2F..%2Fpyproject.toml", "/static/missing.js",
                                  "/static/.hidden.js", "/static/app.py", "/static/"])
def test_other_paths_are_not_served(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "Traceback" not in response.text and "server/web" not in response.text


def test_the_api_is_untouched_by_the_page(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert "content-security-policy" not in client.get("/healthz").headers
    paths = client.get("/openapi.json").json()["paths"]
    assert "/healthz" in paths and "/" not in paths and "/static/{name}" not in paths


def test_mounting_twice_adds_nothing(app: FastAPI) -> None:
    routes = list(app.routes)
    mount_web(app)  # build_app has mounted the page already
    assert list(app.routes) == routes
    assert sum(getattr(route, "path", None) == "/" for route in app.routes) == 1
