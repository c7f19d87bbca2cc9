"""The WeChat router, driven the way WeChat's servers drive it: signed requests, plaintext or AES-encrypted XML.

Signatures are computed here from the protocol's definition (sha1 of the sorted strings); encryption uses
wechatpy's WeChatCrypto, which implements WeChat's format. `answer_text` is a stand-in: the knowledge base
is not the subject here, except in the one test of starting over in the whole service. Each client is used as a
context manager, so that all its requests share one event loop and an answer still running in the background does
not hold up the next request.
Every signed query has a fresh nonce, as WeChat's have: the router refuses a (timestamp, nonce, signature) it has seen.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import logging
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from conftest import logged_entries
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send
from wechatpy.crypto import WeChatCrypto

import server.wechat
from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from server.app import create_app
from server.conversations import Conversations
from server.middleware import ARRIVED
from server.reply import reply_text
from server.service import open_service
from server.settings import ServerSettings
from server.wechat import (
    APOLOGY,
    ASK_FOR_QUESTION,
    BUSY,
    STARTED_OVER,
    SUCCESS,
    TEXT_ONLY,
    WELCOME,
    WeChatConfig,
    WeChatConfigError,
    _ReplyCache,
    create_wechat_router,
)

TOKEN = "test-token"
APP_ID = "wx0123456789abcdef"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
ACCOUNT = "gh_account"  # the 公众号 / 小程序 (ToUserName of what the user sends)
USER = "user-openid"
HOLDING = "请稍候，正在查询"

_msg_ids = itertools.count(10_000_000_000_000_000)
_nonces = itertools.count(1)


class Recorder:
    """An answer_text that echoes the question and records each call."""

    def __init__(self) -> None:
        self.questions: list[str] = []
        self.users: list[str] = []

    def __call__(self, question: str, user: str) -> str:
        self.questions.append(question)
        self.users.append(user)
        return f"答：{question}"


class Remembering(Recorder):
    """An answer_text that keeps each user's questions in a Conversations, as the service does, and says which
    earlier questions it read a question with."""

    def __init__(self) -> None:
        super().__init__()
        self.conversations = Conversations()

    def __call__(self, question: str, user: str) -> str:
        earlier = self.conversations.history(user)
        self.conversations.add(user, question)
        reply = super().__call__(question, user)
        return f"{reply}（接着：{'、'.join(earlier)}）" if earlier else reply


class ArrivedEarlier:
    """What server.middleware.StampArrival does, as if the request had arrived `ago_s` seconds ago."""

    def __init__(self, app: ASGIApp, ago_s: float) -> None:
        self.app, self.ago_s = app, ago_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[ARRIVED] = time.monotonic() - self.ago_s
        await self.app(scope, receive, send)


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """A client of an app holding only the WeChat router (AES configured, so both modes work)."""
    clients: list[TestClient] = []

    def make(answer_text: Callable[[str, str], str], arrived_ago_s: float | None = None,
             start_over: Callable[[str], None] | None = None, **config: object) -> TestClient:
        config = {"app_id": APP_ID, "encoding_aes_key": AES_KEY, "holding_message": HOLDING, **config}
        app = FastAPI()
        app.include_router(create_wechat_router(WeChatConfig(token=TOKEN, **config), answer_text, start_over))
        if arrived_ago_s is not None:
            app.add_middleware(ArrivedEarlier, ago_s=arrived_ago_s)
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def signed_query(token: str = TOKEN, timestamp: str | None = None) -> dict[str, str]:
    """A query signed as WeChat signs it: now (unless `timestamp` is given), with a nonce not used before."""
    timestamp, nonce = str(int(time.time())) if timestamp is None else timestamp, f"nonce{next(_nonces)}"
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return {"signature": signature, "timestamp": timestamp, "nonce": nonce}


def cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(msg_type: str, fields: str, account: str = ACCOUNT, user: str = USER) -> str:
    return (f"<xml><ToUserName>{cdata(account)}</ToUserName><FromUserName>{cdata(user)}</FromUserName>"
            f"<CreateTime>1700000000</CreateTime><MsgType>{cdata(msg_type)}</MsgType>{fields}</xml>")


def text_xml(content: str, msg_id: int | None = None, **names: str) -> str:
    fields = f"<Content>{cdata(content)}</Content><MsgId>{msg_id or next(_msg_ids)}</MsgId>"
    return message_xml("text", fields, **names)


def post_plain(client: TestClient, body: str, query: dict[str, str] | None = None) -> httpx.Response:
    return client.post("/wechat", params=query or signed_query(), content=body.encode())


def post_encrypted(client: TestClient, body: str, msg_signature: str | None = None) -> httpx.Response:
    query = signed_query()
    envelope = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(body, query["nonce"], query["timestamp"])
    query.update(encrypt_type="aes", msg_signature=msg_signature or ET.fromstring(envelope).findtext("MsgSignature"))
    return client.post("/wechat", params=query, content=envelope.encode())


class TellingReplyCache(_ReplyCache):
    """The router's reply cache, telling when a reply is kept in it: an answer still being computed after the
    holding message is kept there, when it is done, for WeChat's retry."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.kept = threading.Event()

    def put(self, key: str, reply: str) -> None:
        super().put(key, reply)
        self.kept.set()


@pytest.fixture
def reply_caches(monkeypatch: pytest.MonkeyPatch) -> list[TellingReplyCache]:
    """The reply cache of each router made from here on (in order), a TellingReplyCache."""
    caches: list[TellingReplyCache] = []

    def make(*args: object, **kwargs: object) -> TellingReplyCache:
        caches.append(TellingReplyCache(*args, **kwargs))
        return caches[-1]

    monkeypatch.setattr(server.wechat, "_ReplyCache", make)
    return caches


def retry_once_answered(client: TestClient, delivery: str, cache: TellingReplyCache) -> httpx.Response:
    """WeChat's retry of `delivery` once the answer, still being computed after the holding message, is kept
    for it. A wait for a background thread (its timeout only says that it never ended), not a judge of time."""
    assert cache.kept.wait(timeout=60), "the answer finished after the holding message was never kept"
    return post_plain(client, delivery)


def reply_of(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    return ET.fromstring(response.text)


def content_of(response: httpx.Response) -> str:
    reply = reply_of(response)
    assert (reply.findtext("MsgType"), reply.findtext("ToUserName"), reply.findtext("FromUserName")) == \
        ("text", USER, ACCOUNT)
    return reply.findtext("Content") or ""


def assert_no_traceback(body: str) -> None:
    assert "Traceback" not in body and 'File "' not in body and ".py" not in body


# --- URL verification (GET) ----------------------------------------------------------------------------------


def test_get_with_valid_signature_echoes_echostr(make_client: Callable[..., TestClient]) -> None:
    response = make_client(Recorder()).get("/wechat", params={**signed_query(), "echostr": "5837397749"})
    assert (response.status_code, response.text) == (200, "5837397749")
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("make_query", [
    lambda: {**signed_query(), "signature": "0" * 40},
    lambda: {**signed_query(), "timestamp": str(int(time.time()) + 1)},
    lambda: signed_query(token="another-token"),
    dict,
], ids=["wrong signature", "tampered timestamp", "other token", "no parameters"])
def test_get_with_bad_signature_is_403(make_client: Callable[..., TestClient],
                                       make_query: Callable[[], dict[str, str]]) -> None:
    response = make_client(Recorder()).get("/wechat", params={**make_query(), "echostr": "5837397749"})
    assert (response.status_code, response.text) == (403, "invalid signature")


# --- freshness and replays -----------------------------------------------------------------------------------


@pytest.mark.parametrize("timestamp", [
    lambda: str(int(time.time()) - 301),
    lambda: str(int(time.time()) + 301),
    lambda: "1700000000",
    lambda: "not-a-number",
    lambda: "",
    lambda: "4" * 400,
    lambda: "9" * 5000,
    lambda: "-1",
    lambda: f"-{int(time.time())}",
    lambda: f"+{int(time.time())}",
    lambda: f" {int(time.time())}",
    lambda: f"{int(time.time())}.0",
    lambda: f"{int(time.time()):_}",
    lambda: str(int(time.time())).translate(str.maketrans("0123456789", "０１２３４５６７８９")),
], ids=["301 s old", "301 s ahead", "long ago", "not a number", "empty", "400 digits", "5000 digits", "negative",
        "now negated", "now with +", "now with a space", "now with a fraction", "now with _", "now in full-width"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_signed_request_with_a_stale_timestamp_is_403(make_client: Callable[..., TestClient], method: str,
                                                      timestamp: Callable[[], str]) -> None:
    """The signature is right (signed with the token), but a captured request must not be usable later."""
    answer = Recorder()
    response = make_client(answer).request(method, "/wechat", params={**signed_query(timestamp=timestamp()),
                                                                      "echostr": "5837397749"},
                                           content=text_xml("问题").encode() if method == "POST" else None)
    assert (response.status_code, response.text) == (403, "stale timestamp")
    assert answer.questions == []


@pytest.mark.parametrize("skew_s", [-290, 290])
def test_timestamp_within_the_window_is_accepted(make_client: Callable[..., TestClient], skew_s: int) -> None:
    """WeChat's clock and ours differ a little."""
    client = make_client(Recorder())
    query = signed_query(timestamp=str(int(time.time()) + skew_s))
    assert client.get("/wechat", params={**query, "echostr": "ok"}).text == "ok"
    assert content_of(post_plain(client, text_xml("问题"), query)) == "答：问题"


def test_replayed_post_is_403(make_client: Callable[..., TestClient]) -> None:
    """In plaintext mode the signature does not cover the body, so a replayed query could carry any message."""
    answer = Recorder()
    client = make_client(answer)
    query = signed_query()
    assert content_of(post_plain(client, text_xml("第一个问题"), query)) == "答：第一个问题"
    replay = post_plain(client, text_xml("冒充的问题"), query)
    assert (replay.status_code, replay.text) == (403, "replayed")
    assert answer.questions == ["第一个问题"]


def test_replayed_encrypted_post_is_403(make_client: Callable[..., TestClient]) -> None:
    answer = Recorder()
    client = make_client(answer)
    query = signed_query()
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    envelope = crypto.encrypt_message(text_xml("问题"), query["nonce"], query["timestamp"])
    query.update(encrypt_type="aes", msg_signature=ET.fromstring(envelope).findtext("MsgSignature") or "")
    assert client.post("/wechat", params=query, content=envelope.encode()).status_code == 200
    replay = client.post("/wechat", params=query, content=envelope.encode())
    assert (replay.status_code, replay.text) == (403, "replayed")
    assert answer.questions == ["问题"]


def test_replay_is_refused_for_as_long_as_its_timestamp_is_fresh(make_client: Callable[..., TestClient],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A request dated ahead stays fresh for up to twice the window after it is first seen."""
    clock = SimpleNamespace(now=1_700_000_000.0)
    monkeypatch.setattr(server.wechat, "time", SimpleNamespace(time=lambda: clock.now, monotonic=lambda: clock.now))
    client = make_client(Recorder(), max_clock_skew_s=300.0)
    query = signed_query(timestamp=str(int(clock.now) + 290))
    assert content_of(post_plain(client, text_xml("问题"), query)) == "答：问题"
    clock.now += 450  # the timestamp is now 160 s old: still fresh
    replay = post_plain(client, text_xml("问题"), query)
    assert (replay.status_code, replay.text) == (403, "replayed")
    clock.now += 200  # and now stale
    assert post_plain(client, text_xml("问题"), query).text == "stale timestamp"


def test_replay_memory_full_of_fresh_requests_refuses_new_ones_rather_than_forget_one(
        make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A memory that forgot the oldest request when full would accept it again after a flood."""
    clock = SimpleNamespace(now=1_700_000_000.0)
    monkeypatch.setattr(server.wechat, "time", SimpleNamespace(time=lambda: clock.now, monotonic=lambda: clock.now))
    answer = Recorder()
    client = make_client(answer, max_remembered_requests=3)
    queries = [signed_query(timestamp=str(int(clock.now))) for _ in range(3)]
    for query in queries:
        assert content_of(post_plain(client, text_xml("问题"), query)) == "答：问题"
    flood = post_plain(client, text_xml("又一个问题"), signed_query(timestamp=str(int(clock.now))))
    assert (flood.status_code, flood.text) == (200, SUCCESS), "WeChat does not retry this"
    replay = post_plain(client, text_xml("冒充的问题"), queries[0])
    assert (replay.status_code, replay.text) == (403, "replayed")
    assert answer.questions == ["问题"] * 3
    clock.now += 301  # the remembered requests are stale now: refused as such, and forgotten to make room
    assert post_plain(client, text_xml("冒充的问题"), queries[0]).text == "stale timestamp"
    query = signed_query(timestamp=str(int(clock.now)))
    assert content_of(post_plain(client, text_xml("下一个问题"), query)) == "答：下一个问题"


# --- response headers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("send", [
    lambda client: client.get("/wechat", params={**signed_query(), "echostr": "<b>5837397749</b>"}),
    lambda client: client.get("/wechat", params={**signed_query(), "signature": "0" * 40}),
    lambda client: post_plain(client, text_xml("问题")),
    lambda client: post_encrypted(client, text_xml("问题")),
    lambda client: post_plain(client, message_xml("event", "<Event>unsubscribe</Event>")),
    lambda client: post_plain(client, "这不是 XML"),
    lambda client: post_encrypted(client, text_xml("问题"), msg_signature="0" * 40),
    lambda client: post_plain(client, text_xml("问题"), {**signed_query(), "signature": "0" * 40}),
], ids=["URL check", "URL check refused", "reply", "encrypted reply", "success", "malformed", "bad msg_signature",
        "bad signature"])
def test_every_response_forbids_content_sniffing(make_client: Callable[..., TestClient],
                                                 send: Callable[[TestClient], httpx.Response]) -> None:
    """echostr is echoed as the body: a browser must not read it (or a reply) as HTML."""
    assert send(make_client(Recorder())).headers["x-content-type-options"] == "nosniff"


# --- text messages -------------------------------------------------------------------------------------------


def test_plaintext_text_message_is_answered_in_a_text_reply(make_client: Callable[..., TestClient]) -> None:
    answer = Recorder()
    response = post_plain(make_client(answer), text_xml("信访事项多长时间办结？"))
    assert content_of(response) == "答：信访事项多长时间办结？"
    assert answer.questions == ["信访事项多长时间办结？"]
    assert answer.users == [USER], "the sender's OpenID, which the service rate-limits by"


def test_encrypted_text_message_gets_an_encrypted_reply(make_client: Callable[..., TestClient]) -> None:
    response = post_encrypted(make_client(Recorder()), text_xml("行政复议的期限是多久"))
    envelope = reply_of(response)
    assert "行政复议" not in response.text
    assert envelope.findtext("Encrypt")
    plain = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        response.text, envelope.findtext("MsgSignature"), envelope.findtext("TimeStamp"), envelope.findtext("Nonce"))
    reply = ET.fromstring(plain)
    assert (reply.findtext("ToUserName"), reply.findtext("FromUserName"), reply.findtext("Content")) == \
        (USER, ACCOUNT, "答：行政复议的期限是多久")


def test_post_with_bad_signature_is_403(make_client: Callable[..., TestClient]) -> None:
    answer = Recorder()
    query = {**signed_query(), "signature": "0" * 40}
    response = make_client(answer).post("/wechat", params=query, content=text_xml("问题").encode())
    assert response.status_code == 403
    assert answer.questions == []


def test_encrypted_message_with_bad_msg_signature_is_403(make_client: Callable[..., TestClient]) -> None:
    answer = Recorder()
    response = post_encrypted(make_client(answer), text_xml("问题"), msg_signature="0" * 40)
    assert response.status_code == 403
    assert answer.questions == []


def test_encrypted_message_without_aes_key_is_400(make_client: Callable[..., TestClient]) -> None:
    """Even when the body also carries the plaintext (WeChat's 兼容模式): plaintext mode was configured."""
    answer = Recorder()
    query = {**signed_query(), "encrypt_type": "aes", "msg_signature": "0" * 40}
    response = make_client(answer, encoding_aes_key="", app_id="").post(
        "/wechat", params=query, content=text_xml("问题").encode())
    assert response.status_code == 400
    assert answer.questions == []


@pytest.mark.parametrize("body", [
    "<xml><MsgType>text</MsgType>",
    "这不是 XML",
    "",
    "<root><MsgType>text</MsgType></root>",
    "<xml/>",
    "<xml><MsgType><a>text</a></MsgType></xml>",
    message_xml("text", "<Content>问题</Content><MsgId>not-a-number</MsgId>"),
    "<xml><ToUserName>gh</ToUserName><MsgType>text</MsgType><Content>问题</Content><MsgId>1</MsgId></xml>",
    message_xml("text", "<Content>问题</Content><MsgId>1</MsgId>", user="").replace(
        "<![CDATA[]]>", "<a>nested</a>"),
], ids=["unclosed", "not xml", "empty", "wrong root", "no fields", "nested type", "bad MsgId", "no sender",
        "nested sender"])
def test_malformed_message_is_400_without_traceback(make_client: Callable[..., TestClient], body: str) -> None:
    answer = Recorder()
    response = post_plain(make_client(answer), body)
    assert response.status_code == 400
    assert len(response.text) < 100
    assert_no_traceback(response.text)
    assert answer.questions == []


def test_malformed_encrypted_payload_is_400(make_client: Callable[..., TestClient]) -> None:
    query = signed_query()
    envelope = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(text_xml("问题"), query["nonce"], query["timestamp"])
    root = ET.fromstring(envelope)
    encrypt = "not base64 ciphertext"
    msg_signature = hashlib.sha1("".join(sorted([TOKEN, query["timestamp"], query["nonce"], encrypt])).encode())
    body = envelope.replace(root.findtext("Encrypt") or "", encrypt)
    response = make_client(Recorder()).post(
        "/wechat", params={**query, "encrypt_type": "aes", "msg_signature": msg_signature.hexdigest()},
        content=body.encode())
    assert response.status_code == 400
    assert_no_traceback(response.text)


def test_retried_message_is_answered_once_with_the_same_reply(make_client: Callable[..., TestClient]) -> None:
    answer = Recorder()
    client = make_client(answer)
    first_delivery = text_xml("法律援助怎么申请", msg_id=next(_msg_ids))
    first, retry = post_plain(client, first_delivery), post_plain(client, first_delivery)
    assert content_of(first) == content_of(retry) == "答：法律援助怎么申请"
    assert answer.questions == ["法律援助怎么申请"]
    post_plain(client, text_xml("法律援助怎么申请"))  # asked again: a new MsgId is a new question
    assert len(answer.questions) == 2


def test_retry_cache_forgets_after_its_ttl_and_beyond_its_capacity(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(server.wechat, "time", SimpleNamespace(monotonic=lambda: clock.now))
    cache = _ReplyCache(ttl_s=300, max_entries=2)
    assert cache.claim("a") and not cache.claim("a")
    cache.put("a", "reply a")
    assert cache.get("a") == "reply a"
    clock.now += 301
    assert cache.claim("a"), "a delivery after the TTL is a new message"
    assert cache.get("a") is None
    assert cache.claim("b") and cache.claim("c")
    assert not cache.claim("c") and cache.claim("a"), "the oldest entry made room"
    cache.put("b", "reply b")  # "b" was evicted in turn: a late answer does not bring it back
    assert cache.get("b") is None


def test_slow_answer_gets_the_holding_message_and_a_later_retry_the_answer(
        make_client: Callable[..., TestClient], reply_caches: list[TellingReplyCache]) -> None:
    release, finished = threading.Event(), threading.Event()

    def slow_answer(question: str, user: str) -> str:
        release.wait(timeout=30)
        finished.set()
        return f"迟到的答：{question}"

    client = make_client(slow_answer, reply_timeout_s=0.2)
    delivery = text_xml("本镇法治政府建设情况")
    try:
        response = post_plain(client, delivery)
        assert not finished.is_set(), "the reply did not wait for the answer"
        assert content_of(response) == HOLDING
        retry_while_answering = post_plain(client, delivery)
        assert (retry_while_answering.status_code, retry_while_answering.text) == (200, SUCCESS)
    finally:
        release.set()
    assert content_of(retry_once_answered(client, delivery, reply_caches[0])) == "迟到的答：本镇法治政府建设情况"


def test_a_message_behind_the_same_users_unfinished_answer_is_answered_at_once(
        make_client: Callable[..., TestClient]) -> None:
    """A flood from one user must not queue past WeChat's 5 s: while their answer is being computed, each further
    message of theirs gets BUSY without waiting (a wait would end in the holding message instead), and other
    users are answered as usual."""
    asked, release = threading.Event(), threading.Event()
    answer = Recorder()

    def blocking_for_user(question: str, user: str) -> str:
        if user == USER:
            asked.set()
            release.wait(timeout=30)
        return answer(question, user)

    client = make_client(blocking_for_user, reply_timeout_s=30.0)  # long, so that any waiting would show
    with ThreadPoolExecutor(max_workers=1) as background:
        try:
            first = background.submit(post_plain, client, text_xml("第一个问题"))
            assert asked.wait(timeout=30)
            for number in range(20):
                assert content_of(post_plain(client, text_xml(f"问题{number}"))) == BUSY
            other = reply_of(post_plain(client, text_xml("别人的问题", user="another-openid")))
            assert other.findtext("Content") == "答：别人的问题"
        finally:
            release.set()
        assert content_of(first.result(timeout=30)) == "答：第一个问题"
    assert content_of(post_plain(client, text_xml("第二个问题"))) == "答：第二个问题", "answered again once free"
    assert answer.questions == ["别人的问题", "第一个问题", "第二个问题"]


@pytest.mark.parametrize("arrived_ago_s", [59.9, 100.0], ids=["0.1 s left", "already late"])
def test_holding_time_is_measured_from_arrival(make_client: Callable[..., TestClient], arrived_ago_s: float,
                                              reply_caches: list[TellingReplyCache]) -> None:
    """A request that waited for the event loop or a thread has less of WeChat's 5 s left; the answer still
    goes on, so that WeChat's retry gets it. The answer is held up for 30 s: a reply that waited the whole
    60 s of reply_timeout_s from when the handler ran would carry the answer instead of the holding message."""
    release = threading.Event()

    def held_up_answer(question: str, user: str) -> str:
        release.wait(timeout=30)
        return f"答：{question}"

    client = make_client(held_up_answer, arrived_ago_s=arrived_ago_s, reply_timeout_s=60.0)
    delivery = text_xml("信访事项多长时间办结？")
    try:
        assert content_of(post_plain(client, delivery)) == HOLDING
    finally:
        release.set()
    assert content_of(retry_once_answered(client, delivery, reply_caches[0])) == "答：信访事项多长时间办结？"


def test_answer_that_raises_gets_an_apology(make_client: Callable[..., TestClient],
                                            caplog: pytest.LogCaptureFixture) -> None:
    def broken_answer(question: str, user: str) -> str:
        raise RuntimeError("index file /srv/kb/index.faiss is corrupt")

    with caplog.at_level(logging.ERROR, logger="server.wechat"):
        response = post_plain(make_client(broken_answer), text_xml("问题"))
    assert content_of(response) == APOLOGY
    assert "corrupt" not in response.text
    assert_no_traceback(response.text)
    assert any(record.exc_info and "corrupt" in str(record.exc_info[1]) for record in caplog.records)


def test_answer_containing_cdata_end_stays_well_formed(make_client: Callable[..., TestClient]) -> None:
    question = "a]]><MsgType>image</MsgType>"
    assert content_of(post_plain(make_client(Recorder()), text_xml(question))) == f"答：{question}"


@pytest.mark.parametrize("content", ["", "   \n "])
def test_empty_text_asks_for_a_question(make_client: Callable[..., TestClient], content: str) -> None:
    answer = Recorder()
    assert content_of(post_plain(make_client(answer), text_xml(content))) == ASK_FOR_QUESTION
    assert answer.questions == []


def test_long_text_is_passed_to_answer_text_unchanged(make_client: Callable[..., TestClient]) -> None:
    """The service applies the configured length limit (and says so to the user); the router does not."""
    answer = Recorder()
    question = "问" * 5000
    assert content_of(post_plain(make_client(answer), text_xml(question))) == f"答：{question}"
    assert answer.questions == [question]


@pytest.mark.parametrize("names", [
    {"user": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M]]><evil/>"},
    {"account": "gh_account]]><evil/><![CDATA["},
], ids=["FromUserName", "ToUserName"])
def test_names_containing_cdata_end_give_a_well_formed_reply(make_client: Callable[..., TestClient],
                                                             names: dict[str, str]) -> None:
    """The names are echoed into the reply (FromUserName as its ToUserName); they must not end their CDATA."""
    user, account = names.get("user", USER), names.get("account", ACCOUNT)
    reply = reply_of(post_plain(make_client(Recorder()), text_xml("问题", **names)))
    assert (reply.findtext("ToUserName"), reply.findtext("FromUserName")) == (user, account)
    assert (reply.findtext("MsgType"), reply.findtext("Content")) == ("text", "答：问题")
    assert reply.find(".//evil") is None and [child.tag for child in reply] == \
        ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content"]


def test_answer_with_characters_xml_cannot_hold_stays_well_formed(make_client: Callable[..., TestClient]) -> None:
    """Text extracted from PDFs can carry form feeds and other control characters."""
    client = make_client(lambda question, user: "第一页\x0c第二页\x00\x1b完\ud800")
    assert content_of(post_plain(client, text_xml("问题"))) == "第一页第二页完"


# --- starting over -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["新问题", "  新问题。 ", "重新开始！", "重新开始!", "新问题 ！！", "\u3000重新开始\n"])
def test_starting_over_forgets_the_conversation_and_is_not_a_question(make_client: Callable[..., TestClient],
                                                                      command: str) -> None:
    answer = Remembering()
    client = make_client(answer, start_over=answer.conversations.forget)
    assert content_of(post_plain(client, text_xml("信访事项多久办结？"))) == "答：信访事项多久办结？"
    post_plain(client, text_xml("离婚后孩子归谁抚养？", user="another-openid"))
    assert content_of(post_plain(client, text_xml(command))) == STARTED_OVER
    assert answer.questions == ["信访事项多久办结？", "离婚后孩子归谁抚养？"], "not asked, so not logged either"
    assert content_of(post_plain(client, text_xml("那要是对处理意见不满意呢？"))) == "答：那要是对处理意见不满意呢？"
    assert answer.conversations.history("another-openid") == ("离婚后孩子归谁抚养？",), "only the sender's"


def test_a_question_beginning_like_the_command_is_read_in_its_conversation(
        make_client: Callable[..., TestClient]) -> None:
    """The control for the test above."""
    answer = Remembering()
    client = make_client(answer, start_over=answer.conversations.forget)
    post_plain(client, text_xml("信访事项多久办结？"))
    assert content_of(post_plain(client, text_xml("新问题怎么提？"))) == "答：新问题怎么提？（接着：信访事项多久办结？）"


def test_starting_over_without_conversation_memory_is_still_not_a_question(
        make_client: Callable[..., TestClient]) -> None:
    answer = Recorder()
    assert content_of(post_plain(make_client(answer), text_xml("重新开始"))) == STARTED_OVER
    assert answer.questions == []


def test_starting_over_in_the_service_reads_the_next_question_on_its_own(
        corpus_index: Path, corpus_kb: KnowledgeBase, settings: Settings, tmp_path: Path) -> None:
    """The real service and knowledge base: 「新问题」 is neither answered nor logged, and the elliptical question
    after it is not read with the one before it, as it is in a conversation that goes on."""
    first, follow_up, read_with_first = "信访事项多久办结？", "那要是对处理意见不满意呢？", "接着您上一个问题「信访事项多久办结？」"
    config = replace(ServerSettings(), query_log=tmp_path / "querylog.sqlite", admin_key="", rate_per_minute=6000,
                     rate_burst=1000, wechat_token=TOKEN, wechat_app_id="", wechat_aes_key="")
    service = open_service(replace(settings, index_dir=corpus_index), config, corpus_kb)
    with TestClient(create_app(service)) as client:
        def reply(text: str, user: str) -> str:
            return reply_of(post_plain(client, text_xml(text, user=user))).findtext("Content") or ""

        reply(first, "going-on")
        assert read_with_first in reply(follow_up, "going-on")
        reply(first, USER)
        assert reply(" 新问题！", USER) == STARTED_OVER
        assert read_with_first not in reply(follow_up, USER)
        logged = [entry["question"] for entry in logged_entries(service, 10)]
    assert logged == [follow_up, first, follow_up, first]


# --- the reply's text ------------------------------------------------------------------------------------------


def test_the_reply_lists_other_possibly_relevant_articles_before_the_notice() -> None:
    citation = {"n": 1, "citation": "《信访工作条例》第三十四条", "doc_date": "2022-02-25"}
    other = {"chunk_id": "c35", "doc_id": "xinfang", "doc_title": "信访工作条例", "doc_kind": "law",
             "doc_date": "2022-02-25", "section": "第五章 信访事项的办理", "article": "第三十五条", "article_no": 35,
             "citation": "《信访工作条例》第三十五条", "text": "第三十五条 信访人对信访事项处理意见不服的，……",
             "score": 0.41, "start": 0, "end": 120, "first_line": "信访人对信访事项处理意见不服的，可以自收到书面答复之日…"}
    answer = {"answer": "根据《信访工作条例》第三十四条：……[1]", "answerable": True, "citations": [citation],
              "notice": "以上内容由系统从知识库原文中自动摘录，仅供参考。", "related_passages": [
                  other, {**other, "citation": "《信访工作条例》第三十六条", "first_line": ""}]}
    assert reply_text(answer).endswith(
        "参考依据：\n[1] 《信访工作条例》第三十四条（2022-02-25）\n\n"
        "其他可能相关的条文：\n《信访工作条例》第三十五条：信访人对信访事项处理意见不服的，可以自收到书面答复之日…\n"
        "《信访工作条例》第三十六条\n\n【提示】以上内容由系统从知识库原文中自动摘录，仅供参考。")
    assert "其他可能相关" not in reply_text({**answer, "related_passages": []})
    assert "其他可能相关" not in reply_text({key: value for key, value in answer.items() if key != "related_passages"})


# --- other messages and events -------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [
    "<Event>subscribe</Event>",
    "<Event>subscribe</Event><EventKey>qrscene_123</EventKey><Ticket>TICKET</Ticket>",
], ids=["subscribe", "subscribe by QR code"])
def test_subscribing_gets_the_welcome(make_client: Callable[..., TestClient], fields: str) -> None:
    answer = Recorder()
    response = post_encrypted(make_client(answer), message_xml("event", fields))
    reply = ET.fromstring(WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        response.text, *(reply_of(response).findtext(f) for f in ("MsgSignature", "TimeStamp", "Nonce"))))
    assert reply.findtext("Content") == WELCOME
    assert all(topic in WELCOME for topic in ("信访", "法律法规", "法治政府建设报告"))
    assert answer.questions == []


@pytest.mark.parametrize("fields", [
    "<Event>unsubscribe</Event>",
    "<Event>LOCATION</Event><Latitude>23.1</Latitude><Longitude>113.3</Longitude><Precision>119</Precision>",
    "<Event>user_enter_tempsession</Event><SessionFrom>wxapp</SessionFrom>",
], ids=["unsubscribe", "location report", "mini program session"])
def test_other_events_get_no_message(make_client: Callable[..., TestClient], fields: str) -> None:
    response = post_plain(make_client(Recorder()), message_xml("event", fields))
    assert (response.status_code, response.text) == (200, "success")


@pytest.mark.parametrize("msg_type, fields", [
    ("image", "<PicUrl><![CDATA[http://example.com/a.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId>"),
    ("voice", "<MediaId><![CDATA[m2]]></MediaId><Format><![CDATA[amr]]></Format>"),
    ("location", "<Location_X>23.1</Location_X><Location_Y>113.3</Location_Y><Scale>20</Scale>"),
])
def test_non_text_message_gets_the_text_only_notice(make_client: Callable[..., TestClient],
                                                    msg_type: str, fields: str) -> None:
    answer = Recorder()
    response = post_plain(make_client(answer), message_xml(msg_type, f"{fields}<MsgId>{next(_msg_ids)}</MsgId>"))
    assert content_of(response) == TEXT_ONLY
    assert answer.questions == []


# --- configuration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [
    {"token": ""},
    {"token": TOKEN, "encoding_aes_key": AES_KEY[:-1], "app_id": APP_ID},
    {"token": TOKEN, "encoding_aes_key": AES_KEY},
], ids=["no token", "short key", "key without app id"])
def test_unusable_config_is_refused(config: dict[str, str]) -> None:
    with pytest.raises(WeChatConfigError):
        WeChatConfig(**config)
