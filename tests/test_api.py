"""The HTTP API over the corpus index (slow: needs the session's corpus index)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from kb.knowledge_base import KnowledgeBase
from server.app import MAX_QUERY_CHARS, create_app

pytestmark = pytest.mark.slow

HIT_FIELDS = {"chunk_id", "doc_id", "doc_title", "doc_kind", "doc_date", "section", "article", "article_no",
              "citation", "text", "score", "start", "end"}


@pytest.fixture(scope="module")
def client(corpus_kb: KnowledgeBase) -> TestClient:
    return TestClient(create_app(corpus_kb), raise_server_exceptions=False)


def assert_no_traceback(body: str) -> None:
    assert "Traceback" not in body and 'File "' not in body and ".py" not in body


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz(client: TestClient, corpus_kb: KnowledgeBase) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "chunks": len(corpus_kb.chunks), "documents": 21}


def test_search(client: TestClient, corpus_kb: KnowledgeBase) -> None:
    response = client.get("/api/search", params={"q": "信访事项多长时间办结", "top_k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "信访事项多长时间办结"
    assert len(body["hits"]) == 3
    first = body["hits"][0]
    assert set(first) == HIT_FIELDS
    assert first["citation"] == "《信访工作条例》第三十四条"
    assert (first["doc_date"], first["article_no"], first["doc_kind"]) == ("2022-02-25", 34, "law")
    assert first["text"] == corpus_kb.documents[first["doc_id"]].text[first["start"] : first["end"]]


def test_search_default_top_k(client: TestClient) -> None:
    response = client.get("/api/search", params={"q": "民法典第一千二百六十条"})
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert len(hits) == 5
    assert (hits[0]["doc_title"], hits[0]["article_no"]) == ("中华人民共和国民法典", 1260)


def test_longest_allowed_question(client: TestClient) -> None:
    question = ("信访事项多长时间办结" * 60)[:MAX_QUERY_CHARS]
    response = client.get("/api/search", params={"q": question, "top_k": 1})
    assert response.status_code == 200
    assert len(response.json()["hits"]) == 1


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="missing-q"),
        pytest.param({"q": "信" * (MAX_QUERY_CHARS + 1)}, id="q-too-long"),
        pytest.param({"q": "信访", "top_k": 0}, id="top_k-0"),
        pytest.param({"q": "信访", "top_k": 101}, id="top_k-101"),
        pytest.param({"q": "信访", "top_k": "many"}, id="top_k-not-int"),
    ],
)
def test_invalid_requests_are_422(client: TestClient, params: dict) -> None:
    response = client.get("/api/search", params=params)
    assert response.status_code == 422
    assert "detail" in response.json()
    assert_no_traceback(response.text)


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_question_is_a_400_error_without_traceback(client: TestClient, question: str) -> None:
    response = client.get("/api/search", params={"q": question})
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "QueryError", "message": "empty question"}}
    assert_no_traceback(response.text)


def test_unknown_path_is_404(client: TestClient) -> None:
    response = client.get("/api/nothing")
    assert response.status_code == 404
    assert_no_traceback(response.text)
