"""What one service process holds, and the one way in for a question.

`ServiceState.ask` is used by every channel (the JSON API, the OpenAI-compatible endpoint, WeChat and the
`kb ask` command): it applies the rate limit and the configured question limits, answers, and hands the record
to the question log's writer thread (server/logwriter.py): an answer never waits for the log, and a log that
cannot be written (locked, full, read-only, missing) is reported by /readyz while answers go on.

The rate limiter is charged in one place, `ServiceState._charge`: for a question by `admit` (what reading it
costs), for any other public request (search, documents, contacts, feedback) by `admit_request` (one token).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.build import ingest
from kb.config import KB_NAME_RE, Settings
from kb.errors import IndexMissingError
from kb.knowledge_base import KnowledgeBase
from kb.search.conversation import MAX_HISTORY, retrievals_for
from kb.text.personal import mask_personal_data
from server.admission import Admission
from server.clients import parse_networks
from server.conversations import Conversations, ConversationTokens
from server.errors import ApiError
from server.jobs import JobRunner
from server.logwriter import LogWriter
from server.querylog import is_postgresql
from server.ratelimit import RateLimiter
from server.settings import ServerSettings
from server.shared import SharedConversations, SharedDatabase


def checked_text(text: object, what: str = "问题") -> str:
    """Text a client sent, refused when it is not text or not valid Unicode (a lone surrogate, say)."""
    if not isinstance(text, str):
        raise ApiError(400, "invalid_text", f"{what}必须是文字")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "invalid_text", f"{what}中含有无效的字符") from None
    return text


@dataclass(frozen=True)
class Admitted:
    """A question within its limits whose cost the client's rate limit has paid: what answering it needs."""

    question: str
    earlier: tuple[str, ...]
    client: str
    conversation: str | None


class ServiceState:
    def __init__(self, settings: Settings, config: ServerSettings, kb: KnowledgeBase, log: LogWriter) -> None:
        self.settings = settings
        self.config = config
        self._kb = kb
        self._reload_lock = threading.Lock()
        self.log = log
        self._rate_limiter = RateLimiter(config.rate_per_minute, config.rate_burst)
        self.admission = Admission(config.max_concurrent, config.max_waiting, config.max_wait_s)
        self.proxies = parse_networks(config.trusted_proxies)
        self.jobs = JobRunner()
        # Replicas share the PostgreSQL log, and through it each WeChat user's conversation; an API conversation
        # travels with the client as its conversation_id.
        self.shared = SharedDatabase(config.query_log) if is_postgresql(config.query_log) else None
        memory = Conversations(config.conversation_ttl_s)
        self.conversations = memory if self.shared is None else SharedConversations(self.shared, memory)
        self.tokens = ConversationTokens(config.conversation_secret, config.conversation_ttl_s)
        self._others: dict[str, KnowledgeBase] = {}  # other knowledge bases of the Milvus store, opened on use
        self._others_lock = threading.Lock()

    @property
    def kb(self) -> KnowledgeBase:
        """The current knowledge base. A request keeps the one it started with, so a reload drops nothing."""
        return self._kb

    def knowledge_base(self, name: str | None = None) -> KnowledgeBase:
        """The knowledge base a request names: this service's own (KB_NAME) when it names none; with
        KB_STORE=milvus any other of the store (one deployment for many townships), opened on first use."""
        if name is None or name == self.settings.kb_name:
            return self.kb
        if self.settings.store != "milvus":
            raise ApiError(400, "unknown_kb", f"本服务只有一个知识库（{self.settings.kb_name}）")
        if not KB_NAME_RE.fullmatch(name):
            raise ApiError(400, "unknown_kb", "知识库名称只能包含字母、数字、_ 和 -")
        with self._others_lock:
            if name not in self._others:
                try:
                    self._others[name] = KnowledgeBase.open(settings=self.settings.with_(kb_name=name),
                                                            embedder=self._kb.embedder)
                except IndexMissingError:
                    raise ApiError(404, "unknown_kb", f"没有名为 {name} 的知识库") from None
            return self._others[name]

    def knowledge_base_names(self) -> list[str]:
        """What a request may name: every knowledge base of the Milvus store, or this service's own."""
        return self.kb.store.names() or [self.settings.kb_name]

    # -- the one way in ------------------------------------------------------------------------------------

    def _charge(self, client: str, cost: int) -> None:
        """The one place the rate limiter is charged: ApiError 429 (with Retry-After) when `client` is over it."""
        wait = self._rate_limiter.check(client, cost)
        if wait is not None:
            raise ApiError(429, "rate_limited", "请求太频繁，请稍后再试", {"Retry-After": str(int(wait))})

    def admit_request(self, client: str) -> None:
        """A public request that is not a question (search, documents, contacts, feedback) costs one token of
        `client`'s rate limit, before any work; ApiError 429 when it is over."""
        self._charge(client, 1)

    def checked_question(self, text: object) -> str:
        question = checked_text(text).strip()
        if not question:
            raise ApiError(400, "empty_question", "问题不能为空")
        limit = self.config.max_question_chars
        if len(question) > limit:
            raise ApiError(400, "question_too_long", f"问题太长了，请控制在{limit}字以内")
        return question

    def checked_history(self, history: object) -> tuple[str, ...]:
        """Earlier questions a client sent, each held to the same limits as a question."""
        if not isinstance(history, (list, tuple)):
            raise ApiError(400, "invalid_history", "history 必须是之前问题的列表")
        if len(history) > MAX_HISTORY:
            raise ApiError(400, "history_too_long", f"history 最多{MAX_HISTORY}个问题")
        limit = self.config.max_question_chars
        checked = tuple(checked_text(h, "之前的问题").strip() for h in history)
        if any(len(h) > limit for h in checked):
            raise ApiError(400, "question_too_long", f"之前的问题太长了，请控制在{limit}字以内")
        return checked

    def admit(self, question: object, client: str, *, history: object = None, conversation: str | None = None,
              token: str | None = None) -> Admitted:
        """Question limits → rate limit, before any work (a refused request costs no retrieval, no thread, no
        turn among the workers). A follow-up is read with `history` as the client sent it, or else with what
        the server kept for `conversation` (a WeChat user), or else with what `token` (an API conversation_id
        issued to this client) carries. The rate limit charges what the reading costs (retrievals_for: 1 alone,
        up to 11 with two earlier questions), so a client sending long histories gets 429s, not other clients'
        CPU. Raises ApiError for what the client must change (too
        fast, empty, too long, invalid text)."""
        checked = self.checked_question(question)
        if history is not None:
            earlier = self.checked_history(history)
        else:
            earlier = self.conversations.history(conversation) if conversation else self.tokens.read(token, client)
        self._charge(client, retrievals_for(earlier))
        return Admitted(checked, earlier, client, conversation)

    def conversation_token(self, admitted: Admitted) -> str:
        """The conversation_id that carries the question with the ones it was read with, for the next one."""
        return self.tokens.issue((*admitted.earlier, admitted.question), admitted.client)

    def answer(self, admitted: Admitted, channel: str, *, top_k: int | None = None,
               filters: Mapping[str, Any] | None = None, kb_name: str | None = None) -> dict:
        """Answer → remember it in its conversation → log (queued, never waited for). The answer object plus
        `question_id`."""
        question = admitted.question
        answer = self.knowledge_base(kb_name).ask(question, filters=filters, passages=top_k,
                                                  history=admitted.earlier)
        if admitted.conversation:
            self.conversations.add(admitted.conversation, question)
        question_id = uuid.uuid4().hex
        self.log.record(question_id=question_id, question=question, answer=answer.answer,
                        answerable=answer.answerable, confidence=answer.confidence,
                        citations=[c.hit.citation for c in answer.citations], latency_ms=answer.took_ms,
                        client=admitted.client, channel=channel)
        shown = answer.to_dict()
        if shown.get("follow_up_of"):  # echoed to the client: masked like everything the log keeps
            shown["follow_up_of"] = mask_personal_data(shown["follow_up_of"])
        return {"question_id": question_id, **shown}

    def ask(self, question: object, channel: str, client: str, *, top_k: int | None = None,
            filters: Mapping[str, Any] | None = None, history: object = None, conversation: str | None = None,
            kb_name: str | None = None) -> dict:
        """admit, then answer: for channels that answer in the thread they run in (WeChat, `kb ask`)."""
        admitted = self.admit(question, client, history=history, conversation=conversation)
        return self.answer(admitted, channel, top_k=top_k, filters=filters, kb_name=kb_name)

    # -- index updates ---------------------------------------------------------------------------------------

    def reload(self) -> KnowledgeBase:
        """Load the newest index beside the old one, then swap; on failure the old one stays in use."""
        with self._reload_lock:
            if self._kb.store.refresh():  # the store re-read what changed (Milvus): nothing to load
                return self._kb
            fresh = KnowledgeBase.open(settings=self.settings, embedder=self._kb.embedder)
            self._kb = fresh
            return fresh

    def rebuild(self) -> str:
        """Re-ingest the corpus folder, then reload; the old index answers until the new one is in."""
        report = ingest([self.settings.corpus_dir], self.settings, embedder=self._kb.embedder)
        kb = self.reload()
        return (f"{report.documents} 个文档, {report.chunks} 个片段（新嵌入 {report.chunks - report.reused} 个）, "
                f"用时 {report.seconds:.1f} 秒; 已载入 {len(kb.documents)} 个文档")

    def close(self) -> None:
        """Stop the job runner (a running job finishes), write what the log still has queued, close it."""
        self.jobs.close()
        self.log.close()
        if self.shared is not None:
            self.shared.close()


def open_service(settings: Settings, config: ServerSettings | None = None,
                 kb: KnowledgeBase | None = None) -> ServiceState:
    config = config or ServerSettings()
    kb = kb or KnowledgeBase.open(settings=settings)
    kb.safety.model()  # embeds the danger phrasings now (about 2 s), not while the first citizen waits
    return ServiceState(settings, config, kb, LogWriter(config.query_log))
