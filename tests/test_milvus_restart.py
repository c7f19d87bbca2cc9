"""Surviving a Milvus restart (issue 26, item 3): a running service answers 503 `store_unavailable` with
Retry-After while Milvus is down (/readyz too, /healthz stays 200), and answers again, with the same citation, once
Milvus is back — collections come back released, and the store loads them again on the error; no app restart.

The end-to-end test restarts its own milvus-lite server (a separate process, as a Milvus standalone would be) under
a running app; the fast tests check the store's read wrapper and the HTTP mapping without any Milvus."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import httpx
import pytest
from conftest import make_small_corpus, serve_in_thread
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pymilvus.exceptions import MilvusException
from test_api import assert_error, make_client
from test_milvus import in_milvus

from bench.services import milvus_lite
from ingest.build import ingest
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.errors import KnowledgeBaseError, StoreUnavailableError
from kb.knowledge_base import KnowledgeBase
from kb.stores.milvus import MilvusStore
from server.errors import install_error_handlers

QUESTION = "路面塌陷多久设置警示标志"
#: How long a restarted milvus-lite may take to answer reads again.
RECOVER_SECONDS = 120


# --- the store's read wrapper, with a stand-in client (fast: no Milvus, no model) -------------------------------


class FakeClient:
    """A MilvusClient stand-in: `query` fails with each queued error in turn, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.queries = 0
        self.loaded: list[str] = []

    def query(self, collection: str, **_: object) -> list[dict]:
        self.queries += 1
        if self.errors:
            raise self.errors.pop(0)
        return [{"kb": "town"}]

    def has_collection(self, collection: str) -> bool:
        return True

    def load_collection(self, collection: str) -> None:
        self.loaded.append(collection)


RELEASED = MilvusException(code=101, message="Collection 'zhengwu_kb_records' is in state 'released'; call load() "
                                             "before search/get/query")
DOWN = MilvusException(code=2, message="Fail connecting to server on 127.0.0.1:19530, illegal connection params or "
                                       "server unavailable")


class Unavailable(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE


def fake_store(client: FakeClient, address: str = "http://127.0.0.1:19530") -> MilvusStore:
    return MilvusStore(client, "town", address)


def test_a_released_collection_is_loaded_again_and_the_read_retried_once() -> None:
    client = FakeClient(RELEASED)
    assert fake_store(client).names() == ["town"]
    assert client.queries == 2
    assert sorted(client.loaded) == ["zhengwu_kb_handles", "zhengwu_kb_passages", "zhengwu_kb_records"]

    client = FakeClient(RELEASED, RELEASED)  # still released after loading: no loop, the error goes on
    with pytest.raises(MilvusException):
        fake_store(client).names()
    assert client.queries == 2


@pytest.mark.parametrize("error", [DOWN, Unavailable(), MilvusException(code=grpc.StatusCode.UNAVAILABLE,
                                                                      message="[query] Retry timeout: 10s")])
def test_an_unreachable_milvus_is_store_unavailable_naming_the_address_without_credentials(error: Exception) -> None:
    store = fake_store(FakeClient(error), "http://admin:s3cret@milvus.example:19530")
    with pytest.raises(StoreUnavailableError) as raised:
        store.names()
    assert isinstance(raised.value, KnowledgeBaseError)
    message = str(raised.value)
    assert "http://milvus.example:19530" in message and "s3cret" not in message and "admin" not in message
    assert "无法连接" in message and "cannot be reached" in message
    with pytest.raises(StoreUnavailableError):  # released, reloaded, then down: unavailable as well
        fake_store(FakeClient(RELEASED, error)).ping()


def test_other_milvus_errors_are_left_alone() -> None:
    refused = MilvusException(code=1100, message="invalid expression")
    with pytest.raises(MilvusException) as raised:
        fake_store(FakeClient(refused)).names()
    assert raised.value is refused


def test_store_unavailable_is_503_with_retry_after() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/down")
    def down() -> None:
        raise StoreUnavailableError("http://milvus.example:19530", "connection refused")

    response = TestClient(app).get("/down")
    assert_error(response, 503, "store_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert "milvus.example" not in response.text  # the address is for the log, not for anyone who asks


# --- a real restart under a running app (slow: the model and a milvus-lite server) ------------------------------


def citations(response: httpx.Response) -> list[tuple]:
    assert response.status_code == 200, response.text
    return [(c["doc_id"], c["doc_title"], c["article_no"], c["citation"], c["chunk_id"], c["text"])
            for c in response.json()["citations"]]


@pytest.mark.slow
def test_a_running_service_survives_a_milvus_restart(tmp_path: Path, settings: Settings,
                                                     embedder: Embedder) -> None:
    with milvus_lite(tmp_path / "milvus") as milvus:
        town = in_milvus(settings, milvus.uri, "restart")
        ingest([make_small_corpus(tmp_path)], town, embedder=embedder)
        kb = KnowledgeBase.open(settings=town, embedder=embedder)
        app = make_client(town, kb, tmp_path).app  # the app `kb serve` runs, served below by uvicorn
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as http:
            ask = {"question": QUESTION}
            before = citations(http.post("/api/ask", json=ask))
            assert before and before[0][1] == "乡村道路养护条例"
            assert http.get("/readyz").status_code == 200

            milvus.stop()
            for response in (http.post("/api/ask", json=ask), http.get("/api/search", params={"q": QUESTION}),
                             http.get("/readyz")):
                assert_error(response, 503, "store_unavailable")
                assert response.headers["Retry-After"] == "5"
                assert milvus.uri not in response.text
            assert http.get("/healthz").json() == {"status": "ok"}  # alive: an orchestrator should not restart it

            milvus.start()  # same data folder and port; the collections come back released
            deadline = time.monotonic() + RECOVER_SECONDS
            while True:  # the client reconnects by itself within a few seconds; meanwhile only 503s are allowed
                response = http.post("/api/ask", json=ask)
                if response.status_code == 200:
                    break
                assert_error(response, 503, "store_unavailable")
                assert time.monotonic() < deadline, "the service did not recover after Milvus came back"
                time.sleep(0.5)
            assert citations(response) == before
            assert http.get("/readyz").json()["status"] == "ready"
            assert http.get("/api/search", params={"q": QUESTION}).json()["hits"][0]["doc_title"] == "乡村道路养护条例"
        kb.store.close()
