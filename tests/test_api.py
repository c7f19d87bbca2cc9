"""The HTTP API over the real corpus index and model: every endpoint and every error path."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import CORPUS_DOCUMENTS, logged_entries, serve_in_thread
from fastapi.testclient import TestClient

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from server.app import create_app
from server.service import open_service
from server.settings import ServerSettings

pytestmark = pytest.mark.slow

ADMIN_KEY = "test-admin-key-123"
HIT_FIELDS = {"chunk_id", "doc_id", "doc_title", "doc_kind", "doc_date", "section", "article", "article_no",
              "citation", "text", "score", "start", "end"}
QUESTION = "信访事项多长时间办结"


def make_client(settings: Settings, kb: KnowledgeBase, tmp: Path, index_dir: Path | None = None,
                **server: object) -> TestClient:
    defaults = {"query_log": tmp / "querylog.sqlite", "admin_key": "", "cors_origins": (), "rate_per_minute": 6000,
                "rate_burst": 1000, "wechat_token": ""}
    server_settings = replace(ServerSettings(), **{**defaults, **server})
    service = open_service(replace(settings, index_dir=index_dir or settings.index_dir), server_settings, kb)
    return TestClient(create_app(service), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(corpus_index: Path, corpus_kb: KnowledgeBase, settings: Settings,
           tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return make_client(settings, corpus_kb, tmp_path_factory.mktemp("api"), corpus_index, admin_key=ADMIN_KEY)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert "Traceback" not in response.text and ".py" not in response.text


# --- service ----------------------------------------------------------------------------------------------------


def test_health_and_readiness(client: TestClient, corpus_kb: KnowledgeBase) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert (ready["status"], ready["documents"], ready["chunks"]) == ("ready", CORPUS_DOCUMENTS, len(corpus_kb.store.chunks))
    assert ready["store"] == {"store": "local"} and ready["query_log"] == {"ok": True, "pending": 0}
    assert str(corpus_kb.store.path) not in json.dumps(ready), "anyone may ask; paths are for staff"
    staff = client.get("/readyz", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert staff["store"] == {"store": "local", "index_dir": str(corpus_kb.store.path)}
    assert staff["query_log"]["path"] and staff["query_log"]["failed_writes"] == 0


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/ask", "/api/search", "/api/documents", "/api/documents/{doc_id}",
                 "/api/documents/{doc_id}/articles/{article_no}", "/api/feedback", "/v1/chat/completions"):
        assert path in paths


# --- questions ---------------------------------------------------------------------------------------------------


def test_search(client: TestClient, corpus_kb: KnowledgeBase) -> None:
    body = client.get("/api/search", params={"q": QUESTION, "top_k": 3}).json()
    assert body["query"] == QUESTION and len(body["hits"]) == 3
    first = body["hits"][0]
    assert set(first) == HIT_FIELDS and first["citation"] == "《信访工作条例》第三十四条"
    assert first["text"] == corpus_kb.documents[first["doc_id"]].text[first["start"] : first["end"]]


def test_ask_answers_with_citations_and_logs_the_question(client: TestClient) -> None:
    body = client.post("/api/ask", json={"question": QUESTION + "？我的电话13800138000"}).json()
    assert body["answerable"] and body["mode"] == "extractive"
    assert body["citations"][0]["citation"] == "《信访工作条例》第三十四条" and "[1]" in body["answer"]
    start, end = body["citations"][0]["highlights"][0]
    assert body["citations"][0]["text"][start:end] in body["answer"]
    assert body["notice"].startswith("以上内容由系统从知识库原文中自动摘录") and "12348" in body["notice"]
    assert "不受理信访和投诉" in body["notice"] and "110" not in body["notice"]
    logged = logged_entries(client.app.state.service, 5)
    entry = next(e for e in logged if e["question_id"] == body["question_id"])
    assert "13800138000" not in json.dumps(entry, ensure_ascii=False), "personal data is masked before storage"
    assert entry["answerable"] and entry["latency_ms"] > 0


def test_out_of_scope_question_is_not_answered(client: TestClient) -> None:
    body = client.post("/api/ask", json={"question": "今年世界杯冠军是谁？"}).json()
    assert body["answerable"] is False and body["citations"] == []
    assert "12348" in body["notice"], "a refusal says where a person can help too"


def test_a_question_about_violence_shows_the_emergency_numbers(client: TestClient) -> None:
    body = client.post("/api/ask", json={"question": "老公家暴经常打我，我该怎么办？"}).json()
    assert body["notice"].startswith("如正面临暴力或人身危险，请立即拨打110报警") and "12338" in body["notice"]


@pytest.mark.parametrize("payload, status, code", [
    ({"question": ""}, 400, "empty_question"),
    ({"question": "   \n "}, 400, "empty_question"),
    ({"question": "信" * 501}, 400, "question_too_long"),
    ({"question": 123}, 422, "invalid_request"),
    ({"question": QUESTION, "top_k": 0}, 422, "invalid_request"),
    ({"question": QUESTION, "filters": {"colour": "red"}}, 422, "invalid_request"),
    ({}, 422, "invalid_request"),
])
def test_ask_rejects_bad_input(client: TestClient, payload: dict, status: int, code: str) -> None:
    assert_error(client.post("/api/ask", json=payload), status, code)


def test_malformed_json_and_oversized_bodies(client: TestClient) -> None:
    headers = {"Content-Type": "application/json"}
    assert_error(client.post("/api/ask", content=b'{"question": "x"', headers=headers), 400, "malformed_json")
    assert_error(client.post("/api/ask", content=b"\xff\xfe not json", headers=headers), 400, "malformed_json")
    huge = json.dumps({"question": "信访" * 40000}).encode()
    assert_error(client.post("/api/ask", content=huge, headers=headers), 413, "payload_too_large")


def test_search_rejects_bad_input(client: TestClient) -> None:
    assert_error(client.get("/api/search"), 422, "invalid_request")
    assert_error(client.get("/api/search", params={"q": " "}), 400, "empty_question")
    assert_error(client.get("/api/search", params={"q": "信" * 501}), 400, "question_too_long")
    assert_error(client.get("/api/search", params={"q": QUESTION, "top_k": "many"}), 422, "invalid_request")


# --- documents --------------------------------------------------------------------------------------------------


def test_documents_and_articles(client: TestClient) -> None:
    documents = client.get("/api/documents").json()["documents"]
    assert len(documents) == CORPUS_DOCUMENTS
    xinfang = next(d for d in documents if d["title"] == "信访工作条例")
    assert (xinfang["kind"], xinfang["date"], xinfang["articles"]) == ("law", "2022-02-25", 50)
    full = client.get(f"/api/documents/{xinfang['doc_id']}").json()
    anchor = next(a for a in full["articles_index"] if a["article_no"] == 34)
    assert full["text"][anchor["start"] : anchor["end"]].startswith("第三十四条")
    article = client.get(f"/api/documents/{xinfang['doc_id']}/articles/34").json()
    assert article["citation"] == "《信访工作条例》第三十四条" and "60日内办结" in article["text"]


def test_documents_state_their_labelled_dates(client: TestClient) -> None:
    """Each document's dates as it states them (the corpus files' headers, and the 「本法自……起施行」 of their
    last article): `published`, the line `date` comes from, with its own word, and `effective`, its 施行."""
    documents = {d["title"]: d for d in client.get("/api/documents").json()["documents"]}
    labelled = {title: tuple(None if d[key] is None else (d[key]["label"], d[key]["date"])
                             for key in ("published", "effective")) for title, d in documents.items()}
    # 2022年2月25日 中共中央、国务院发布; 第五十条 本条例自2022年5月1日起施行.
    assert labelled["信访工作条例"] == (("发布", "2022-02-25"), ("施行", "2022-05-01"))
    assert documents["信访工作条例"]["published"]["event"] == "中共中央、国务院发布"
    assert documents["信访工作条例"]["effective"]["event"] == "本条例自2022年5月1日起施行"
    # 2020年5月28日 第十三届全国人民代表大会第三次会议通过; 2021年1月1日 施行 (once per part: shown once).
    assert labelled["中华人民共和国民法典"] == (("通过", "2020-05-28"), ("施行", "2021-01-01"))
    # The latest amendment; its 「1982年12月4日 公布施行」 is older than that, so no 施行 is claimed.
    assert labelled["中华人民共和国宪法"] == (("修正", "2018-03-11"), None)
    # Revised in 2019, its text still says 「本法自1999年1月1日起施行」: the first version's date, not shown.
    assert labelled["中华人民共和国土地管理法"] == (("修正", "2019-08-26"), None)
    assert labelled["中华人民共和国政府信息公开条例"] == (("修订", "2019-04-03"), ("施行", "2019-05-15"))
    report = next(d for d in documents.values() if d["kind"] == "report")
    assert (report["date"], report["published"], report["effective"]) == ("2024", None, None)
    for title, doc in documents.items():  # `date` stays what it was: the published date (a report: its year)
        assert doc["published"] is None or doc["published"]["date"] == doc["date"], title
    full = client.get(f"/api/documents/{documents['信访工作条例']['doc_id']}").json()
    assert (full["published"], full["effective"]) == (documents["信访工作条例"]["published"],
                                                     documents["信访工作条例"]["effective"])


@pytest.mark.parametrize("path", ["/api/documents/unknown", "/api/documents/..%2F..%2Fetc%2Fpasswd",
                                  "/api/documents/%00", "/api/documents/unknown/articles/1"])
def test_unknown_documents_are_404(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")


def test_unknown_article_is_404(client: TestClient) -> None:
    doc_id = client.get("/api/documents").json()["documents"][0]["doc_id"]
    assert_error(client.get(f"/api/documents/{doc_id}/articles/9999"), 404, "not_found")


# --- feedback and the staff report -----------------------------------------------------------------------------


def test_feedback_reaches_the_log_and_the_unanswered_report(client: TestClient) -> None:
    asked = client.post("/api/ask", json={"question": "红烧肉怎么做？"}).json()
    assert client.post("/api/feedback", json={"question_id": asked["question_id"], "helpful": False,
                                              "comment": "请回复18612345678"}).json() == {"status": "ok"}
    report = client.get("/api/admin/unanswered", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    entry = next(q for q in report["questions"] if "红烧肉" in q["question"])
    assert entry["count"] >= 1 and entry["negative_feedback"] >= 1
    assert "18612345678" not in json.dumps(logged_entries(client.app.state.service, 20), ensure_ascii=False)
    assert_error(client.post("/api/feedback", json={"question_id": "nope", "helpful": True}), 404, "unknown_question")
    assert_error(client.post("/api/feedback", json={"question_id": "x", "helpful": "maybe"}), 422, "invalid_request")


# --- admin --------------------------------------------------------------------------------------------------------


def test_admin_needs_the_key(client: TestClient) -> None:
    assert_error(client.post("/api/admin/reload"), 401, "unauthorized")
    assert_error(client.post("/api/admin/reload", headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    body = client.post("/api/admin/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert body["status"] == "reloaded" and body["documents"] == CORPUS_DOCUMENTS


def test_admin_is_disabled_without_a_configured_key(corpus_kb: KnowledgeBase, settings: Settings,
                                                    tmp_path: Path) -> None:
    client = make_client(settings, corpus_kb, tmp_path)
    assert_error(client.post("/api/admin/reload", headers={"Authorization": "Bearer "}), 403, "admin_disabled")
    assert_error(client.get("/api/admin/unanswered"), 403, "admin_disabled")


# --- abuse --------------------------------------------------------------------------------------------------------


def test_rate_limit(corpus_kb: KnowledgeBase, settings: Settings, tmp_path: Path) -> None:
    client = make_client(settings, corpus_kb, tmp_path, rate_per_minute=1, rate_burst=3)
    statuses = [client.get("/api/documents").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/documents")
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.get("/healthz").status_code == 200, "health checks are never limited"


def test_cors_is_closed_by_default_and_opens_for_configured_origins(client: TestClient, corpus_kb: KnowledgeBase,
                                                                    settings: Settings, tmp_path: Path) -> None:
    origin = {"Origin": "https://example.gov.cn"}
    assert "access-control-allow-origin" not in client.get("/healthz", headers=origin).headers
    open_client = make_client(settings, corpus_kb, tmp_path, cors_origins=("https://example.gov.cn",))
    assert open_client.get("/healthz", headers=origin).headers["access-control-allow-origin"] == origin["Origin"]


# --- OpenAI-compatible ----------------------------------------------------------------------------------------------


def test_openai_models_and_chat(client: TestClient) -> None:
    assert client.get("/v1/models").json()["data"][0]["id"] == "zhengwu-kb"
    messages = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "你好"},
                {"role": "user", "content": QUESTION}]
    body = client.post("/v1/chat/completions", json={"model": "zhengwu-kb", "messages": messages}).json()
    content = body["choices"][0]["message"]["content"]
    assert body["object"] == "chat.completion" and body["choices"][0]["finish_reason"] == "stop"
    assert "60日内办结" in content and "参考依据" in content and "《信访工作条例》第三十四条" in content
    assert content.endswith("【提示】" + client.post("/api/ask", json={"question": QUESTION}).json()["notice"])
    with client.stream("POST", "/v1/chat/completions", json={"messages": messages, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == content
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert_error(client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "x"}]}),
                 400, "no_user_message")


# --- reload under load, over a real socket ------------------------------------------------------------------------


def test_reload_under_concurrent_requests_drops_nothing(corpus_index: Path, corpus_kb: KnowledgeBase,
                                                        settings: Settings, tmp_path: Path) -> None:
    app = make_client(settings, corpus_kb, tmp_path, corpus_index, admin_key=ADMIN_KEY).app
    failures: list[str] = []
    done = threading.Event()

    with serve_in_thread(app) as base:

        def load() -> None:
            with httpx.Client(base_url=base, timeout=30) as http:
                for _ in range(40):  # bounded: 4 threads × 40 requests
                    if done.is_set():
                        break
                    response = http.get("/api/search", params={"q": QUESTION, "top_k": 1})
                    if response.status_code != 200 or response.json()["hits"][0]["article_no"] != 34:
                        failures.append(response.text[:200])

        workers = [threading.Thread(target=load) for _ in range(4)]
        try:
            for worker in workers:
                worker.start()
            with httpx.Client(base_url=base, timeout=60) as http:
                for _ in range(3):
                    reloaded = http.post("/api/admin/reload", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
                    assert reloaded.status_code == 200, reloaded.text
            for worker in workers:
                worker.join(timeout=120)
        finally:
            done.set()
    assert failures == []


# --- WeChat, wired to the knowledge base ----------------------------------------------------------------------------


def test_wechat_text_message_is_answered_from_the_knowledge_base(corpus_kb: KnowledgeBase, settings: Settings,
                                                                  tmp_path: Path) -> None:
    import hashlib

    token, timestamp, nonce = "wechat-token", str(int(time.time())), "12345"
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    body = (f"<xml><ToUserName><![CDATA[gh_kb]]></ToUserName><FromUserName><![CDATA[citizen]]></FromUserName>"
            f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{QUESTION}]]></Content><MsgId>1234567890123456</MsgId></xml>")
    with make_client(settings, corpus_kb, tmp_path, wechat_token=token) as client:
        params = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
        reply = client.post("/wechat", params=params, content=body.encode())
        assert reply.status_code == 200, reply.text
        assert "《信访工作条例》第三十四条" in reply.text and "<ToUserName><![CDATA[citizen]]>" in reply.text
        assert client.post("/wechat", params={**params, "signature": "0" * 40}, content=body.encode()).status_code == 403
        logged = logged_entries(client.app.state.service, 1)[0]
        assert (logged["channel"], logged["question"]) == ("wechat", QUESTION)


# --- staff add and remove documents ---------------------------------------------------------------------------------


def _wait_for(client: TestClient, job: dict, headers: dict) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = client.get(f"/api/admin/jobs/{job['job_id']}", headers=headers).json()
        if state["status"] in ("done", "failed"):
            return state
        time.sleep(0.2)
    raise AssertionError("job did not finish in 5 minutes")


def test_staff_add_and_remove_a_document(corpus_index: Path, corpus_kb: KnowledgeBase, settings: Settings,
                                         tmp_path: Path) -> None:
    import shutil

    from kb.config import PROJECT_ROOT

    corpus = tmp_path / "corpus"
    shutil.copytree(PROJECT_ROOT / "corpus", corpus)
    builds = tmp_path / ".index.builds"
    shutil.copytree(corpus_index.resolve(), builds / "copy")
    (tmp_path / "index").symlink_to(builds / "copy")
    local = replace(settings, corpus_dir=corpus, index_dir=tmp_path / "index")
    kb = KnowledgeBase.open(settings=local, embedder=corpus_kb.embedder)
    client = make_client(local, kb, tmp_path, admin_key=ADMIN_KEY)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    rules = "村规民约\n第一条 村民应当爱护公共设施。\n第二条 禁止在河道内倾倒垃圾。\n第三条 红白喜事从简办理，宴席不超过十桌。\n"

    assert_error(client.post("/api/admin/documents", params={"filename": "村规民约.txt"}, content=rules.encode()),
                 401, "unauthorized")
    for name, status, code in [("../村规民约.txt", 400, "bad_filename"), (".hidden.txt", 400, "bad_filename"),
                               ("村规民约.exe", 400, "unsupported_type")]:
        assert_error(client.post("/api/admin/documents", params={"filename": name}, content=b"x", headers=auth),
                     status, code)
    assert_error(client.post("/api/admin/documents", params={"filename": "坏文件.docx"}, content=b"PK\x03\x04junk",
                             headers=auth), 400, "unreadable_document")
    assert not (corpus / "坏文件.docx").exists(), "a refused upload never reaches the corpus"

    job = client.post("/api/admin/documents", params={"filename": "村规民约.txt"}, content=rules.encode("gbk"),
                      headers=auth)
    assert job.status_code == 202, job.text
    finished = _wait_for(client, job.json(), auth)
    assert finished["status"] == "done", finished
    hit = client.get("/api/search", params={"q": "宴席不超过几桌", "top_k": 1}).json()["hits"][0]
    assert hit["citation"] == "《村规民约》第三条"
    assert client.get("/readyz").json()["documents"] == CORPUS_DOCUMENTS + 1

    removed = _wait_for(client, client.delete(f"/api/admin/documents/{hit['doc_id']}", headers=auth).json(), auth)
    assert removed["status"] == "done", removed
    assert client.get("/readyz").json()["documents"] == CORPUS_DOCUMENTS
    assert not (corpus / "村规民约.txt").exists() and list((corpus / ".trash").glob("*村规民约.txt"))
    assert_error(client.get(f"/api/documents/{hit['doc_id']}"), 404, "not_found")


def test_a_query_string_that_is_not_utf8_is_refused_not_searched(client: TestClient) -> None:
    assert_error(client.get("/api/search?q=%E4%BF%A1%FF%FE"), 400, "invalid_text")
    assert client.get("/api/search", params={"q": "信访"}).status_code == 200


def test_every_response_says_nosniff_and_no_page_loads_a_cdn(client: TestClient) -> None:
    responses = [client.get("/healthz"), client.get("/readyz"), client.get("/openapi.json"),
                 client.post("/api/ask", json={"question": "信访事项多久办结？"}), client.post("/api/ask", content=b"{"),
                 client.get("/api/search?q=%FF"), client.get("/nowhere"), client.get("/")]
    assert [r.headers.get("x-content-type-options") for r in responses] == ["nosniff"] * len(responses)
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404


def test_contacts_say_where_a_person_helps(client: TestClient, corpus_kb: KnowledgeBase) -> None:
    contacts = client.get("/api/contacts").json()
    station = corpus_kb.identity
    assert contacts == {"township": station.township, "name": "雁石坪镇公共法律服务站", "phone": station.help_phone,
                        "address": station.help_address, "hours": station.help_hours, "hotline": "12348",
                        "examples": ["信访事项多久办结？", "法律援助向哪里申请？", "镇里建了几条法治文化长廊？",
                                     "行政复议的申请期限是多长？"]}
    for example in contacts["examples"]:  # the page offers only questions its knowledge base answers
        assert client.post("/api/ask", json={"question": example}).json()["answerable"], example
