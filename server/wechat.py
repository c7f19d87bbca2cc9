"""WeChat message push (公众号, 小程序客服消息): WeChat POSTs what a user sends, and our response is the reply.

WeChat gives up after 5 s and then retries the same message, so a slow answer is replaced by a holding message
and retries are served from a short-lived cache instead of being answered again. A user's messages are answered
one at a time: one sent while the user's previous answer is still being computed is told so at once, so that a
flood from one user neither queues past the 5 s nor takes every worker thread. A signed request is accepted
only while its timestamp is fresh and only once, so a captured one cannot be replayed. A user who sends
「新问题」 (or 「重新开始」) starts a new conversation, so that the next question is not read as a follow-up of
the earlier ones. Replicas sharing a PostgreSQL log share the replies by message too (server/shared.py), so
a retry reaching the other replica is not answered twice. Signature checks, parsing and AES "safe mode" are
wechatpy's; the reply XML is built here, so that every field in it is escaped.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import BaseEvent, SubscribeEvent, SubscribeScanEvent
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.messages import BaseMessage, TextMessage
from wechatpy.parser import parse_message
from wechatpy.utils import check_signature

from kb.errors import KnowledgeBaseError
from server.middleware import ARRIVED
from server.shared import SharedDatabase, SharedReplies

log = logging.getLogger(__name__)

#: WeChat retries within about 15 s; a few minutes is ample.
RETRY_CACHE_TTL_S = 300.0
RETRY_CACHE_MAX_ENTRIES = 10_000

WELCOME = ("您好，欢迎关注！请直接发送文字问题，我可以解答信访、法律法规以及本镇法治政府建设报告方面的问题。"
           "追问会接着您上一个问题回答；想问别的事，请先发送「新问题」。")
TEXT_ONLY = "抱歉，目前只能回答文字提问，请用文字描述您的问题。"
ASK_FOR_QUESTION = "请输入您想咨询的问题。"
APOLOGY = "抱歉，系统暂时无法回答您的问题，请稍后再试。"
#: The reply to a message sent while the same user's previous answer is still being computed.
BUSY = "您的上一个问题还在查询中，请稍后再发送这条消息。"
#: What a user sends to start a new conversation: the next question is then not read with the earlier ones.
START_OVER = re.compile(r"(?:新问题|重新开始)[\s。.！!]*")
STARTED_OVER = "好的，您的下一个问题将作为新问题回答，不再接着之前的问题。"
#: WeChat's "received, nothing to send" reply.
SUCCESS = "success"
#: What XML 1.0 cannot hold (control characters, lone surrogates), such as form feeds in text taken from PDFs.
_NOT_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: A timestamp as WeChat sends it, seconds since 1970 in ASCII digits. int() alone would also take signs, "_",
#: spaces and other scripts' digits, and numbers too large to compare with the clock.
_TIMESTAMP = re.compile(r"[0-9]{1,11}")
#: On every response: a browser must not read the echoed echostr or a reply as anything but its declared type.
_HEADERS = {"X-Content-Type-Options": "nosniff"}


class WeChatConfigError(KnowledgeBaseError, ValueError):
    """The WeChat settings cannot work; the message says which one to fix."""


@dataclass(frozen=True)
class WeChatConfig:
    """The values of 服务器配置 in the 公众号 / 小程序 admin console."""

    token: str
    app_id: str = ""  # needed for safe (AES) mode
    encoding_aes_key: str = ""  # 43 chars; empty → plaintext mode only
    reply_timeout_s: float = 4.0  # WeChat waits 5 s from arrival; answer within this or send the holding message
    max_clock_skew_s: float = 300.0  # how far a request's timestamp may be from our clock
    holding_message: str = "您的问题正在查询中，请稍后再问一次或换个说法。"
    #: Requests remembered while fresh, to refuse replays; beyond this many, new requests are refused.
    max_remembered_requests: int = 10_000

    def __post_init__(self) -> None:
        if not self.token:
            raise WeChatConfigError("WeChat token is empty: anyone could sign requests; set the 服务器配置 Token")
        if self.encoding_aes_key and (len(self.encoding_aes_key) != 43 or not self.app_id):
            raise WeChatConfigError("safe mode needs the 43-character EncodingAESKey and the AppID")


class _ReplyCache:
    """Replies by message for a few minutes, so WeChat's retries of a message are not answered again.

    Forgetting one early (beyond max_entries) only means a retry is answered afresh."""

    def __init__(self, ttl_s: float = RETRY_CACHE_TTL_S, max_entries: int = RETRY_CACHE_MAX_ENTRIES) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, str | None]] = OrderedDict()  # key → (first seen, reply)
        self._lock = threading.Lock()

    def claim(self, key: str) -> bool:
        """True for the first delivery of `key` within the TTL; the caller then answers it."""
        now = time.monotonic()
        with self._lock:
            while self._entries and now - next(iter(self._entries.values()))[0] > self._ttl_s:
                self._entries.popitem(last=False)
            if key in self._entries:
                return False
            self._entries[key] = (now, None)
            if len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return True

    def get(self, key: str) -> str | None:
        """The reply to a claimed key, or None while it is still being answered."""
        with self._lock:
            entry = self._entries.get(key)
            return entry[1] if entry else None

    def put(self, key: str, reply: str) -> None:
        with self._lock:
            if key in self._entries:
                self._entries[key] = (self._entries[key][0], reply)


class _Seen(enum.Enum):
    """What the replay memory makes of a request."""

    NEW = "new"
    REPLAYED = "replayed"
    FULL = "full"  # not remembered, so it must be refused


class _SeenRequests:
    """The requests accepted whose timestamps are still fresh, so that none is accepted twice.

    A request is refused once its timestamp is stale, so it only needs remembering until then. Forgetting one
    earlier would let it be replayed, so when the memory is full of fresh ones a new request is not admitted:
    bounded memory, failing closed."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._keys: set[str] = set()
        self._by_staleness: list[tuple[float, str]] = []  # heap of (stale after, key)
        self._lock = threading.Lock()

    def admit(self, key: str, stale_after: float) -> _Seen:
        """NEW (now remembered until the clock, time.time(), passes `stale_after`), REPLAYED or FULL."""
        now = time.time()
        with self._lock:
            while self._by_staleness and self._by_staleness[0][0] < now:
                self._keys.discard(heapq.heappop(self._by_staleness)[1])
            if key in self._keys:
                return _Seen.REPLAYED
            if len(self._keys) >= self._max_entries:
                return _Seen.FULL
            self._keys.add(key)
            heapq.heappush(self._by_staleness, (stale_after, key))
            return _Seen.NEW


class _Answering:
    """The users whose answer is being computed, so that each has at most one at a time."""

    def __init__(self) -> None:
        self._users: set[str] = set()
        self._lock = threading.Lock()

    def begin(self, user: str) -> bool:
        """True if `user` had no answer being computed; they now have, until end(user)."""
        with self._lock:
            if user in self._users:
                return False
            self._users.add(user)
            return True

    def end(self, user: str) -> None:
        with self._lock:
            self._users.discard(user)


@dataclass(frozen=True)
class _Incoming:
    """A message read from a request body."""

    message: BaseMessage
    question: str | None  # a text message's text, stripped; None for any other kind of message
    retry_key: str | None  # the same for every delivery of a message (None: events, which have no MsgId)


class _Respond(Exception):
    """Raised by a step of WeChatEndpoint that has decided the response (a refusal, or "success" with nothing
    done): the request goes no further, and `response` is sent."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class WeChatEndpoint:
    """What /wechat does, one method a step: verify (signed, fresh, never replayed), decrypt (safe mode), parse,
    answer (one answer per user at a time, retries from the cache, the holding message at the deadline) and
    reply (the XML). `verify_url` and `receive` are the routes; create_wechat_router wires them.

    answer_text(question, user) gets the sender's OpenID as `user`: the question-length and per-user rate
    limits are the service's, which words its own refusals. A user who sends 「新问题」 is not asking:
    start_over(user) forgets what the service keeps of their conversation (None: it keeps nothing). With a
    `shared` database the replies by message are kept there for every replica, and in memory too.
    """

    def __init__(self, config: WeChatConfig, answer_text: Callable[[str, str], str],
                 start_over: Callable[[str], None] | None = None, shared: SharedDatabase | None = None) -> None:
        self.config = config
        self._answer_text = answer_text
        self._start_over = start_over
        self._crypto = (WeChatCrypto(config.token, config.encoding_aes_key, config.app_id)
                        if config.encoding_aes_key else None)
        memory = _ReplyCache()
        self._replies = memory if shared is None else SharedReplies(shared, memory, RETRY_CACHE_TTL_S)
        self._seen_requests = _SeenRequests(config.max_remembered_requests)
        self._answering = _Answering()

    # -- the routes ----------------------------------------------------------------------------------------------

    def verify_url(self, signature: str = "", timestamp: str = "", nonce: str = "", echostr: str = "") -> Response:
        """WeChat's check of the server URL (signed)"""
        try:
            self.verify(signature, timestamp, nonce)
        except _Respond as decided:
            return decided.response
        return _plain(echostr)

    async def receive(self, request: Request, signature: str = "", timestamp: str = "", nonce: str = "",
                      encrypt_type: str = "", msg_signature: str = "") -> Response:
        """WeChat message push: a user's message in, the answer as the reply (signed, fresh, never replayed)"""
        # WeChat's 5 s started when the request arrived, which may be a while before this handler runs.
        deadline = request.scope.get(ARRIVED, time.monotonic()) + self.config.reply_timeout_s
        try:
            # Checked before the body is read: in plaintext mode the signature does not cover the body.
            self.verify_once(signature, timestamp, nonce)
            cipher = self.cipher(encrypt_type)
            xml = self.decrypt(await request.body(), cipher, msg_signature, timestamp, nonce)
            incoming = self.parse(xml)
        except _Respond as decided:
            return decided.response
        return self.reply(incoming, await self.answer(incoming, deadline), cipher, nonce, timestamp)

    # -- verify --------------------------------------------------------------------------------------------------

    def verify(self, signature: str, timestamp: str, nonce: str) -> None:
        """Refuses (403) a request that WeChat did not sign, or not recently."""
        if not _signed(self.config.token, signature, timestamp, nonce):
            raise _Respond(_plain("invalid signature", 403))
        if not _fresh(timestamp, self.config.max_clock_skew_s):
            raise _Respond(_plain("stale timestamp", 403))

    def verify_once(self, signature: str, timestamp: str, nonce: str) -> None:
        """verify, and refuse a replayed request too; one that cannot be remembered is not answered."""
        self.verify(signature, timestamp, nonce)
        seen = self._seen_requests.admit(f"{timestamp}:{signature}:{nonce}",
                                         int(timestamp) + self.config.max_clock_skew_s)
        if seen is _Seen.REPLAYED:
            raise _Respond(_plain("replayed", 403))
        if seen is _Seen.FULL:
            # "success" rather than 503: WeChat retries a failed delivery (three times), which would only add
            # to the flood that filled the memory, and the retries would be refused as well.
            log.warning("WeChat request not answered: the replay memory is full (%d requests still fresh)",
                        self.config.max_remembered_requests)
            raise _Respond(_plain(SUCCESS))

    # -- decrypt -------------------------------------------------------------------------------------------------

    def cipher(self, encrypt_type: str) -> WeChatCrypto | None:
        """The safe-mode cipher for an encrypted request (refused, 400, when none is configured); None for a
        plaintext one."""
        if encrypt_type != "aes":
            return None
        if self._crypto is None:
            log.error("WeChat sent an encrypted message but no EncodingAESKey is configured")
            raise _Respond(_plain("safe mode is not configured", 400))
        return self._crypto

    @staticmethod
    def decrypt(body: bytes, cipher: WeChatCrypto | None, msg_signature: str, timestamp: str,
                nonce: str) -> bytes | str:
        """The message's XML: `body` itself in plaintext mode, else decrypted (a wrong msg_signature is a 403)."""
        if cipher is None:
            return body
        try:
            return cipher.decrypt_message(body, msg_signature, timestamp, nonce)
        except InvalidSignatureException:
            raise _Respond(_plain("invalid msg_signature", 403)) from None
        except Exception as exc:  # noqa: BLE001 - whatever wechatpy raised, see parse
            raise _malformed(exc) from None

    # -- parse ---------------------------------------------------------------------------------------------------

    @staticmethod
    def parse(xml: bytes | str) -> _Incoming:
        """The message in `xml` (a 400 when it is not one). wechatpy reports bad input with whatever its parsing
        hit (ExpatError, KeyError, TypeError, binascii.Error, …), and its fields convert lazily, so everything
        used later is read here."""
        try:
            message = parse_message(xml)
            if not all(isinstance(name, str) and name for name in (message.source, message.target)):
                raise ValueError("FromUserName and ToUserName must be text")
            question = (message.content or "").strip() if isinstance(message, TextMessage) else None
            return _Incoming(message, question, f"{message.source}:{message.id}" if message.id else None)
        except Exception as exc:  # noqa: BLE001 - whatever wechatpy raised, see above
            raise _malformed(exc) from None

    # -- answer --------------------------------------------------------------------------------------------------

    async def answer(self, incoming: _Incoming, deadline: float) -> str | None:
        """The text to send back, or None when there is nothing to say (events other than subscribing)."""
        message, question = incoming.message, incoming.question
        if isinstance(message, (SubscribeEvent, SubscribeScanEvent)):
            return WELCOME
        if isinstance(message, BaseEvent):
            return None
        if question is None:
            return TEXT_ONLY
        if not question:
            return ASK_FOR_QUESTION
        if START_OVER.fullmatch(question):
            if self._start_over is not None:
                self._start_over(message.source)
            return STARTED_OVER
        return await self._answer_once(question, message.source, incoming.retry_key, deadline)

    async def _answer_once(self, question: str, user: str, retry_key: str | None, deadline: float) -> str | None:
        """The answer; the holding message if it is not ready by `deadline` (monotonic); BUSY, without waiting,
        while the user's previous answer is still being computed; or None (→ "success") for a retry still
        being answered.

        The answer keeps being computed after the deadline, so that a later retry gets it from the cache.
        """
        if retry_key is not None and not self._replies.claim(retry_key):
            return self._replies.get(retry_key)
        if not self._answering.begin(user):
            if retry_key is not None:
                self._replies.put(retry_key, BUSY)
            return BUSY
        future = asyncio.get_running_loop().run_in_executor(None, self._answer_safely, question, user)
        future.add_done_callback(lambda done: self._answered(user, retry_key, done))
        finished, _ = await asyncio.wait({future}, timeout=max(deadline - time.monotonic(), 0.0))
        return future.result() if finished else self.config.holding_message

    def _answer_safely(self, question: str, user: str) -> str:
        """answer_text's reply; its exceptions are logged, never shown to the user."""
        try:
            return self._answer_text(question, user)
        except Exception:
            log.exception("answering a WeChat question failed")
            return APOLOGY

    def _answered(self, user: str, retry_key: str | None, done: asyncio.Future[str]) -> None:
        """Frees the user for their next message (first, whatever happened), and keeps the reply for retries."""
        self._answering.end(user)
        if retry_key is not None:
            self._replies.put(retry_key, done.result())

    # -- reply ---------------------------------------------------------------------------------------------------

    @staticmethod
    def reply(incoming: _Incoming, text: str | None, cipher: WeChatCrypto | None, nonce: str,
              timestamp: str) -> Response:
        """`text` as the passive reply to the message (encrypted in safe mode); "success" when there is none."""
        if text is None:
            return _plain(SUCCESS)
        reply = _text_reply(incoming.message, text)
        if cipher:
            reply = cipher.encrypt_message(reply, nonce, timestamp)
        return Response(reply, media_type="text/xml", headers=_HEADERS)


def create_wechat_router(config: WeChatConfig, answer_text: Callable[[str, str], str],
                         start_over: Callable[[str], None] | None = None,
                         shared: SharedDatabase | None = None) -> APIRouter:
    """GET /wechat (WeChat's URL check) and POST /wechat (user messages, answered by a passive text reply), both
    WeChatEndpoint's (which says what answer_text, start_over and shared are)."""
    endpoint = WeChatEndpoint(config, answer_text, start_over, shared)
    router = APIRouter()
    router.add_api_route("/wechat", endpoint.verify_url, methods=["GET"])
    router.add_api_route("/wechat", endpoint.receive, methods=["POST"])
    return router


def _malformed(exc: Exception) -> _Respond:
    """The 400 for a message that cannot be read, logged by the kind of failure only (not the user's text)."""
    log.warning("malformed WeChat message (%s)", type(exc).__name__)
    return _Respond(_plain("malformed message", 400))


def _plain(text: str, status_code: int = 200) -> Response:
    """A text/plain response, nosniff like every response here."""
    return PlainTextResponse(text, status_code=status_code, headers=_HEADERS)


def _signed(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException:
        return False
    return True


def _fresh(timestamp: str, max_skew_s: float) -> bool:
    """Whether the request was signed recently: a signed request from long ago may be a captured one."""
    return _TIMESTAMP.fullmatch(timestamp) is not None and abs(time.time() - int(timestamp)) <= max_skew_s


def _text_reply(message: BaseMessage, text: str) -> str:
    """A passive text reply to `message`. The names are echoed from the message (the user's OpenID becomes
    ToUserName), so every field is escaped, not only the text."""
    return (f"<xml><ToUserName>{_cdata(message.source)}</ToUserName>"
            f"<FromUserName>{_cdata(message.target)}</FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType>{_cdata('text')}</MsgType><Content>{_cdata(text)}</Content></xml>")


def _cdata(text: str) -> str:
    """`text` as CDATA that a "]]>" inside cannot end early, without what XML cannot hold."""
    return "<![CDATA[" + _NOT_XML_CHARS.sub("", text).replace("]]>", "]]]]><![CDATA[>") + "]]>"
