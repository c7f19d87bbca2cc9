"""The service's one way in (ServiceState.ask) and the defects found under attack, each reproduced here first:
limits and rate limits on every channel, a question log that cannot be written, invalid text and types, chunked
bodies over the limit, forged X-Forwarded-For, query strings in the access log, uploads over reserved files,
closing on shutdown, and questions waiting behind a re-ingest.

Over a small synthetic corpus (real model, real FAISS, real SQLite), so each test is quick once the model is
loaded."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import logged_entries, make_small_corpus, serve_in_thread
from fastapi.testclient import TestClient
from starlette.requests import Request
from test_hardening import holding

from ingest.build import ingest
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.knowledge_base import KnowledgeBase
from server.admission import Admission
from server.app import create_app
from server.clients import client_address, parse_networks
from server.service import ServiceState, open_service
from server.settings import ServerSettings

pytestmark = pytest.mark.slow

QUESTION = "集市摊位费每天多少钱"
ADMIN_KEY = "admin-key-for-tests"
WECHAT_TOKEN = "wechat-token"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, settings: Settings, embedder: Embedder) -> tuple[Settings, KnowledgeBase]:
    root = tmp_path_factory.mktemp("service")
    own = settings.with_(index_dir=root / "index", corpus_dir=make_small_corpus(root))
    ingest([own.corpus_dir], own, embedder=embedder)
    return own, KnowledgeBase.open(settings=own, embedder=embedder)


def make_service(small: tuple[Settings, KnowledgeBase], tmp: Path, **config: object) -> ServiceState:
    settings, kb = small
    defaults = {"query_log": tmp / "querylog.sqlite", "admin_key": ADMIN_KEY, "cors_origins": (),
                "trusted_proxies": (), "rate_per_minute": 6000.0, "rate_burst": 1000, "wechat_token": WECHAT_TOKEN,
                "wechat_app_id": "", "wechat_aes_key": ""}
    return open_service(settings, replace(ServerSettings(), **{**defaults, **config}), kb)


@pytest.fixture
def service(small: tuple[Settings, KnowledgeBase], tmp_path: Path) -> Iterator[ServiceState]:
    state = make_service(small, tmp_path)
    yield state
    state.close()


def client_of(service: ServiceState) -> TestClient:
    return TestClient(create_app(service), raise_server_exceptions=False)


def wechat(client: TestClient, text: str, user: str = "user-openid") -> str:
    """Send a text message as WeChat would (signed, fresh nonce) and return the reply's text."""
    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    signature = hashlib.sha1("".join(sorted([WECHAT_TOKEN, timestamp, nonce])).encode()).hexdigest()
    body = (f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{uuid.uuid4().int % 10**18}</MsgId></xml>")
    response = client.post("/wechat", params={"signature": signature, "timestamp": timestamp, "nonce": nonce},
                           content=body.encode())
    assert response.status_code == 200, response.text
    return response.text


def chat(client: TestClient, text: str, **extra: object) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": text}], **extra})


def error_code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# --- one way in -----------------------------------------------------------------------------------------------


def test_the_configured_question_limit_applies_on_every_channel(small, tmp_path: Path) -> None:
    service = make_service(small, tmp_path, max_question_chars=12)
    long_question = "集市摊位费每天到底要交多少钱呢"
    with client_of(service) as client:
        assert error_code(client.post("/api/ask", json={"question": long_question})) == (400, "question_too_long")
        assert error_code(chat(client, long_question)) == (400, "question_too_long")
        assert "12字以内" in wechat(client, long_question)
        assert client.post("/api/ask", json={"question": QUESTION}).status_code == 200
        channels = [entry["channel"] for entry in logged_entries(service, 10)]
    assert channels == ["api"], "refused questions are not answered, so not logged"


def test_the_rate_limit_applies_on_every_channel_and_per_wechat_user(small, tmp_path: Path) -> None:
    service = make_service(small, tmp_path, rate_per_minute=1.0, rate_burst=7)
    with client_of(service) as client:
        # WeChat keeps each user's conversation: the second message is read with the first (6 retrievals' worth,
        # kb.search.conversation.retrievals_for), so 1 + 6 use the burst of 7 and the third is refused.
        replies = [wechat(client, QUESTION, user="flooder") for _ in range(3)]
        assert "十元" in replies[0] and "十元" in replies[1]
        assert "请求太频繁" in replies[2] and "十元" not in replies[2]
        assert "十元" in wechat(client, QUESTION, user="neighbour"), "one user's flood does not silence another"
        statuses = [client.post("/api/ask", json={"question": QUESTION}).status_code for _ in range(8)]
        assert statuses == [200] * 7 + [429], "a question alone costs one"
        assert error_code(chat(client, QUESTION)) == (429, "rate_limited")


def test_every_channel_logs_through_the_same_entry(service: ServiceState) -> None:
    with client_of(service) as client:
        client.post("/api/ask", json={"question": QUESTION})
        chat(client, QUESTION)
        wechat(client, QUESTION)
        service.ask(QUESTION, "cli", "cli")
        logged = logged_entries(service, 10)
    assert sorted(entry["channel"] for entry in logged) == ["api", "cli", "openai", "wechat"]
    assert {entry["question"] for entry in logged} == {QUESTION}


def test_a_refused_request_takes_no_turn_among_the_workers(small: tuple[Settings, KnowledgeBase],
                                                           tmp_path: Path) -> None:
    """The rate limit is applied before a question waits for a worker: a client over its limit gets its 429
    at once, even while every worker is busy, and its refusals never hold a turn that others wait for."""
    service = make_service(small, tmp_path, rate_burst=12, rate_per_minute=1.0)
    with client_of(service) as client:
        long_history = [f"之前的问题{n}" + "长" * 400 for n in range(10)]
        assert client.post("/api/ask", json={"question": QUESTION, "history": long_history}).status_code == 200
        service.admission = Admission(workers=1, waiting=0, wait_s=30)
        holder, release = holding(service.admission)
        try:
            refused = client.post("/api/ask", json={"question": QUESTION, "history": long_history})
            assert error_code(refused) == (429, "rate_limited"), "charged 12 for two earlier questions read"
            neighbour = TestClient(client.app, client=("203.0.113.8", 40000), raise_server_exceptions=False)
            busy = neighbour.post("/api/ask", json={"question": QUESTION})
            assert error_code(busy) == (503, "busy"), "a question within its limit waits for a turn, or is told"
        finally:
            release.set()
            holder.join(30)
    service.close()


# --- a question log that cannot be written ------------------------------------------------------------------


def wait_for_a_failed_write(service: ServiceState) -> None:
    deadline = time.monotonic() + 60
    while service.log.health(details=True)["failed_writes"] == 0:
        assert time.monotonic() < deadline, "the writer never tried"
        service.log.flush(0.2)


@pytest.mark.parametrize("breakage", ["read-only", "disk-full", "locked"])
def test_a_question_log_that_cannot_be_written_never_fails_or_holds_up_an_answer(
        service: ServiceState, breakage: str) -> None:
    assert service.log.flush()
    db = service.log.reader()._db
    other = sqlite3.connect(service.log.path, isolation_level=None)
    if breakage == "read-only":
        db.execute("PRAGMA query_only = 1")
    elif breakage == "locked":  # a staff tool holding the file: every write waits its busy timeout, then fails
        other.execute("BEGIN EXCLUSIVE")
    else:  # the file may not grow by a single page, and its pages are full: SQLite's "database or disk is full"
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        with pytest.raises(sqlite3.OperationalError, match="full"):
            for _ in range(10_000):
                db.execute("INSERT INTO questions (question_id, asked_at, question, normalized, answer, answerable,"
                           " confidence, citations, latency_ms, channel) VALUES (hex(randomblob(16)), '', '', '',"
                           " '', 0, 0, '[]', 0, 'filler')")
    with client_of(service) as client:
        answered = client.post("/api/ask", json={"question": QUESTION})
        assert answered.status_code == 200 and answered.json()["answerable"], answered.text
        assert chat(client, QUESTION).status_code == 200
        assert "十元" in wechat(client, QUESTION)
        # All three were answered while none of their records could be written: answers do not wait for the log.
        assert service.log.health()["pending"] == 3
        wait_for_a_failed_write(service)
        public = client.get("/readyz").json()["query_log"]
        assert public == {"ok": False, "pending": 3}, "anyone sees whether the log works, not why"
        details = client.get("/readyz", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()["query_log"]
        assert details["last_error"] and details["path"] == str(service.log.path) and details["failed_writes"] >= 1
        feedback = client.post("/api/feedback", json={"question_id": answered.json()["question_id"],
                                                      "helpful": True})
        assert feedback.status_code == 503 and feedback.json()["error"]["code"] == "log_unavailable"

        if breakage == "locked":
            other.execute("ROLLBACK")  # the tool lets go
        db.execute("PRAGMA query_only = 0")
        db.execute("PRAGMA max_page_count = 1073741823")
        client.post("/api/ask", json={"question": "摊位费多少"})
        assert service.log.flush(timeout_s=120)
        assert client.get("/readyz").json()["query_log"] == {"ok": True, "pending": 0}
        written = [e for e in logged_entries(service, 10_000) if e["channel"] != "filler"]
    other.close()
    assert len(written) == 4, "the answers given while the log failed were kept and written"
    assert [f["helpful"] for e in written for f in e["feedback"]] == [True], "the feedback was kept too"


@pytest.mark.parametrize("where", ["under-a-file", "unreadable-file"])
def test_the_service_starts_and_answers_without_a_usable_log(small: tuple[Settings, KnowledgeBase], tmp_path: Path,
                                                              where: str) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("not a database\n" * 400)
    path = blocker / "querylog.sqlite" if where == "under-a-file" else blocker
    service = make_service(small, tmp_path, query_log=path)
    try:
        with client_of(service) as client:
            answered = client.post("/api/ask", json={"question": QUESTION})
            assert answered.status_code == 200 and answered.json()["answerable"]
            wait_for_a_failed_write(service)
            assert client.get("/readyz").json()["query_log"]["ok"] is False
            details = client.get("/readyz", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()["query_log"]
            assert details["last_error"] and "Traceback" not in details["last_error"]
            unanswered = client.get("/api/admin/unanswered", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            assert unanswered.status_code == 503 and unanswered.json()["error"]["code"] == "log_unavailable"
    finally:
        service.close()


# --- client input ---------------------------------------------------------------------------------------------


def test_invalid_unicode_is_a_clear_400_everywhere(service: ServiceState) -> None:
    lone_surrogate = '"\\ud800abc"'
    headers = {"Content-Type": "application/json"}
    with client_of(service) as client:
        for path, body in [
            ("/api/ask", f'{{"question": {lone_surrogate}}}'),
            ("/v1/chat/completions", f'{{"messages": [{{"role": "user", "content": {lone_surrogate}}}]}}'),
            ("/v1/chat/completions",
             f'{{"stream": true, "messages": [{{"role": "user", "content": {lone_surrogate}}}]}}'),
        ]:
            response = client.post(path, content=body.encode(), headers=headers)
            assert error_code(response) == (400, "invalid_text"), (path, body, response.text)
        in_filter = f'{{"question": "{QUESTION}", "filters": {{"title_contains": {lone_surrogate}}}}}'
        response = client.post("/api/ask", content=in_filter.encode(), headers=headers)
        assert error_code(response) == (422, "invalid_request")  # refused by the body's schema already


@pytest.mark.parametrize(("path", "body"), [
    ("/api/ask", {"question": QUESTION, "filters": {"title_contains": 5}}),
    ("/api/ask", {"question": QUESTION, "filters": {"title_contains": ["集市"]}}),
    ("/api/ask", {"question": QUESTION, "filters": {"doc_kind": "novel"}}),
    ("/api/ask", {"question": QUESTION, "filters": {"colour": "red"}}),
    ("/api/ask", {"question": QUESTION, "top_k": "3"}),
    ("/api/ask", {"question": 123}),
    ("/api/feedback", {"question_id": "x", "helpful": "yes"}),
    ("/api/feedback", {"question_id": "x", "helpful": 1}),
    ("/v1/chat/completions", {"stream": "yes", "messages": [{"role": "user", "content": QUESTION}]}),
])
def test_wrong_types_are_refused_not_coerced(service: ServiceState, path: str, body: dict) -> None:
    with client_of(service) as client:
        assert error_code(client.post(path, json=body)) == (422, "invalid_request")


def test_a_chunked_body_over_the_limit_is_413(service: ServiceState) -> None:
    limit = service.config.max_body_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(limit // 1000 + 2):
            yield b"x" * 1000

    with client_of(service) as client:
        response = client.post("/api/ask", content=chunks(), headers={"Content-Type": "application/json"})
        assert error_code(response) == (413, "payload_too_large")
        small_chunks = iter([b'{"question": ', json.dumps(QUESTION).encode(), b"}"])
        assert client.post("/api/ask", content=small_chunks, headers={"Content-Type": "application/json"}).status_code == 200


# --- who the client is ------------------------------------------------------------------------------------------


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    none, nginx = parse_networks([]), parse_networks(["10.0.0.2", "192.168.0.0/16"])
    assert client_address(_request("203.0.113.9", "1.2.3.4"), none) == "203.0.113.9"
    assert client_address(_request("10.0.0.2", "1.2.3.4"), none) == "10.0.0.2"
    assert client_address(_request("10.0.0.2", "1.2.3.4"), nginx) == "1.2.3.4"
    # a client's own forged entry comes first; the proxy appends the real peer last
    assert client_address(_request("10.0.0.2", "6.6.6.6, 1.2.3.4"), nginx) == "1.2.3.4"
    assert client_address(_request("10.0.0.2", "1.2.3.4, 192.168.1.1"), nginx) == "1.2.3.4"
    assert client_address(_request("203.0.113.9", "1.2.3.4"), nginx) == "203.0.113.9", "not from the proxy"


@pytest.mark.parametrize("forwarded, key", [
    ("1.2.3.4:5678", "1.2.3.4"), ("1.2.3.4:1", "1.2.3.4"), ("[2001:db8:1:2::1]:443", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"), ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
    ("::ffff:1.2.3.4", "1.2.3.4"), ("not-an-address", "10.0.0.2"), ("1.2.3.4.5", "10.0.0.2"),
    ("1.2.3.4, 10.0.0.2:80", "1.2.3.4"),
])
def test_a_client_cannot_rotate_its_key_by_spelling_its_address_otherwise(forwarded: str, key: str) -> None:
    nginx = parse_networks(["10.0.0.2"])
    assert client_address(_request("10.0.0.2", forwarded), nginx) == key


def test_a_malformed_proxy_setting_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="KB_TRUSTED_PROXIES"):
        parse_networks(["not-an-address"])


@pytest.mark.parametrize("trusted", [(), ("127.0.0.1",)])
def test_a_rotating_forwarded_for_does_not_bypass_the_rate_limit(small, tmp_path: Path, trusted: tuple) -> None:
    service = make_service(small, tmp_path, rate_per_minute=1.0, rate_burst=2, trusted_proxies=trusted)
    with serve_in_thread(create_app(service)) as url:
        statuses = [httpx.get(f"{url}/api/documents", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                    for i in range(4)]
    # Untrusted, the header is ignored: one client, limited after its burst. From a trusted proxy, the header
    # names four different clients, each within its own burst.
    assert statuses == ([200, 200, 429, 429] if not trusted else [200, 200, 200, 200])


# --- the access log ---------------------------------------------------------------------------------------------


def test_the_access_log_never_shows_query_strings(service: ServiceState) -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    with serve_in_thread(create_app(service), log_level="info") as url:
        handler = Collect()
        logging.getLogger("uvicorn.access").addHandler(handler)
        try:
            httpx.get(f"{url}/api/search", params={"q": "我的手机13800138000，身份证11010519491231002X"})
            httpx.get(f"{url}/wechat", params={"signature": "f" * 40, "timestamp": "1", "nonce": "n", "echostr": "e"})
        finally:
            logging.getLogger("uvicorn.access").removeHandler(handler)
    assert any("/api/search" in line for line in lines) and any("/wechat" in line for line in lines), lines
    logged = "\n".join(lines)
    for secret in ("13800138000", "11010519491231002X", "q=", "signature", "%E6"):
        assert secret not in logged


# --- staff uploads -------------------------------------------------------------------------------------------------


def test_uploads_never_overwrite_the_corpus_description_and_keep_replaced_files(small, tmp_path: Path) -> None:
    settings, kb = small
    corpus = shutil.copytree(settings.corpus_dir, tmp_path / "corpus")
    (corpus / "SOURCES.md").write_text("# 来源\n", encoding="utf-8")
    own = (settings.with_(corpus_dir=corpus, index_dir=tmp_path / "index"), kb)
    service = make_service(own, tmp_path)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with client_of(service) as client:
        for name in ("SOURCES.md", "README.md", "sources.MD"):
            response = client.post("/api/admin/documents", params={"filename": name}, content="# 覆盖\n".encode(),
                                   headers=auth)
            assert error_code(response) == (400, "reserved_filename")
        assert (corpus / "SOURCES.md").read_text(encoding="utf-8") == "# 来源\n"

        old = (corpus / "集市摊位管理办法.md").read_bytes()
        new = old.decode("utf-8").replace("不超过十元", "不超过八元").encode("utf-8")
        job = client.post("/api/admin/documents", params={"filename": "集市摊位管理办法.md"}, content=new, headers=auth)
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 120
        while client.get(f"/api/admin/jobs/{job.json()['job_id']}", headers=auth).json()["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert (corpus / "集市摊位管理办法.md").read_bytes() == new
    trashed = list((corpus / ".trash").glob("*集市摊位管理办法.md"))
    assert [p.read_bytes() for p in trashed] == [old], "the replaced file is kept, not lost"


def test_an_upload_whose_ingest_fails_leaves_the_corpus_as_it_was(small, tmp_path: Path) -> None:
    settings, kb = small
    corpus = shutil.copytree(settings.corpus_dir, tmp_path / "corpus")
    service = make_service((settings.with_(corpus_dir=corpus, index_dir=tmp_path / "index"), kb), tmp_path)

    def failing_rebuild() -> str:
        raise OSError("disk full while writing the index")

    service.rebuild = failing_rebuild  # type: ignore[method-assign]
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    before = {p.name: p.read_bytes() for p in corpus.iterdir() if p.is_file()}
    old = before["集市摊位管理办法.md"]
    with client_of(service) as client:
        for name, content in [("新办法.md", "# 新办法\n第一条 新规定。\n".encode()),
                              ("集市摊位管理办法.md", old.replace("十元".encode(), "八元".encode()))]:
            job = client.post("/api/admin/documents", params={"filename": name}, content=content, headers=auth)
            assert job.status_code == 202, job.text
            finished = service.jobs.wait(job.json()["job_id"], timeout_s=120)
            assert finished is not None and finished.status == "failed"
        refused = client.post("/api/admin/documents", params={"filename": "规定\u202e.md"}, content=b"x",
                              headers=auth)
        assert error_code(refused) == (400, "bad_filename"), "no control or bidi characters in a document's name"
    assert {p.name: p.read_bytes() for p in corpus.iterdir() if p.is_file()} == before
    service.close()


# --- shutdown ---------------------------------------------------------------------------------------------------------


def test_shutdown_closes_the_question_log_and_stops_the_job_runner(small, tmp_path: Path) -> None:
    service = make_service(small, tmp_path)
    with client_of(service) as client:
        assert client.post("/api/ask", json={"question": QUESTION}).status_code == 200
    with pytest.raises(sqlite3.ProgrammingError):
        logged_entries(service, 1)
    with pytest.raises(RuntimeError):
        service.jobs.submit("late", lambda: "never")


# --- questions during a re-ingest --------------------------------------------------------------------------------


def test_a_question_waits_for_one_batch_of_a_reingest_not_for_all_of_it(small) -> None:
    """The embedder is locked per batch, first come first served: a question asked while passages are being
    embedded runs after the batch in progress, before the passages' next batch."""
    embedder = small[1].embedder
    real, real_tuned = embedder._encode_batch, embedder._encode_query_batch
    order: list[str] = []
    first_batch, question_queued = threading.Event(), threading.Event()

    def recording(texts, batch_size, encoder):
        kind = "query" if texts[0].startswith("query: ") else "passages"
        order.append(kind)
        first_batch.set()
        if kind == "passages" and len(order) == 1:  # the first batch lasts until the question is in the queue
            # FairLock tells no one when a caller takes a ticket, so its queue is looked at until the question is in it.
            deadline = time.monotonic() + 60
            while embedder._lock.waiting() < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            if embedder._lock.waiting() >= 2:
                question_queued.set()  # else the assertion below says the question never queued
        return (real_tuned if encoder == "tuned" else real)(texts, batch_size)

    embedder._encode_batch = lambda texts, size: recording(texts, size, "plain")
    embedder._encode_query_batch = lambda texts, size: recording(texts, size, "tuned")
    try:
        passages = [f"第{i}条 村民委员会每届任期五年。" for i in range(embedder.batch_size * 6)]
        ingesting = threading.Thread(target=embedder.encode_passages, args=(passages,))
        ingesting.start()
        assert first_batch.wait(timeout=120), "the re-ingest never began embedding its first batch"
        embedder.encode_question("村委会几年选一次？")  # both of its vectors, one turn of the lock
        ingesting.join()
    finally:
        embedder._encode_batch, embedder._encode_query_batch = real, real_tuned
    assert question_queued.is_set() and embedder.tuned
    assert order == ["passages", "query", "query"] + ["passages"] * 5
