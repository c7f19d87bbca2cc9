"""Stateless replicas: the question log, feedback and WeChat users' state in one PostgreSQL database
(KB_QUERY_LOG=postgresql://…), and API conversations carried by their conversation_id, so that whichever replica
a request reaches behaves the same. A real PostgreSQL server (conftest.postgresql_server); logging never holds
up or fails an answer, whether the database is down, missing or restarted under the service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import free_port
from fastapi.testclient import TestClient
from test_service import make_service, small, wechat  # noqa: F401 - small: the small corpus's fixture

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from server.app import create_app
from server.conversations import Conversations
from server.logwriter import LogWriter
from server.querylog import SCHEMA_VERSION, LogTarget, QueryLog, QueryLogError, shown
from server.service import ServiceState
from server.shared import SharedConversations, SharedDatabase, SharedReplies

PERSONAL = "我叫张三，身份证11010519491231002X，手机13800138000，社保卡没到怎么办？"
SECRETS = ("11010519491231002X", "13800138000", "0013", "86013388", "help@example", "6222021234567890")


def raw_rows(url: str, sql: str) -> list[tuple]:
    """Read the database directly, as anyone with access to it could."""
    with psycopg.connect(url) as db:
        return db.execute(sql).fetchall()


def dead_url() -> str:
    """A PostgreSQL URL where nothing listens."""
    return f"postgresql://kb@127.0.0.1:{free_port()}/postgres"


def history_of_a_day(log: QueryLog) -> list[str]:
    """The same questions, answers and verdicts, in order, whatever the backend."""
    ids = [log.record(q, "答：请参见相关规定。", answerable, 0.5, ["信访工作条例 第三十四条"], 10.0, client="c",
                      channel="wechat") for q, answerable in [
        ("新生儿怎么上户口？", False), (" 新生儿怎么上户口", False), ("医保怎么异地报销？", True),
        ("医保怎么异地报销", True), ("宠物狗怎么办证", False), ("新生儿 怎么上户口?", False)]]
    assert log.add_feedback(ids[2], False, "答非所问，打13800138000")
    assert log.add_feedback(ids[2], False, None)
    assert log.add_feedback(ids[3], True, None)
    assert not log.add_feedback("0" * 32, False, "没用")
    return ids


def comparable(log: QueryLog) -> tuple[list[dict], list[dict]]:
    """What staff read, without the clock's values."""
    recent = [{**e, "asked_at": None, "feedback": [{**f, "given_at": None} for f in e["feedback"]]}
              for e in log.recent(100)]
    return recent, [{**e, "last_asked": None} for e in log.unanswered()]


# --- the log --------------------------------------------------------------------------------------------------


def test_the_log_says_the_same_from_postgresql_as_from_sqlite(postgresql_url: str, tmp_path: Path) -> None:
    seen: list[tuple[list[dict], list[dict]]] = []
    for target in (tmp_path / "log.sqlite", postgresql_url):
        with QueryLog.open(target) as log:
            ids = history_of_a_day(log)
            recent, unanswered = comparable(log)
            seen.append(([{**e, "question_id": ids.index(e["question_id"])} for e in recent], unanswered))
    assert seen[0] == seen[1]
    assert [(e["normalized"], e["count"], e["negative_feedback"]) for e in seen[1][1]] == [
        ("新生儿怎么上户口", 3, 0), ("宠物狗怎么办证", 1, 0), ("医保怎么异地报销", 1, 2)]
    assert raw_rows(postgresql_url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


def test_personal_data_never_reaches_the_database(postgresql_url: str) -> None:
    with QueryLog.open(postgresql_url) as log:
        question_id = log.record(PERSONAL, "请致电0755-86013388或发邮件至help@example.gov.cn查询。", False, 0.2, [],
                                 40.0)
        assert log.add_feedback(question_id, False, "没用，请打我电话138 0013 8000，卡号6222021234567890")
    stored = repr(raw_rows(postgresql_url, "SELECT question, normalized, answer FROM questions")) + \
        repr(raw_rows(postgresql_url, "SELECT comment FROM feedback"))
    assert not [secret for secret in SECRETS if secret in stored]
    assert "我叫张三，身份证[身份证号]，手机138****8000" in stored


def test_replicas_opening_a_new_database_at_once_create_it_once(postgresql_url: str) -> None:
    opened: list[QueryLog] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_log() -> None:
        start.wait()
        try:
            opened.append(QueryLog.open(postgresql_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_log) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for log in opened:
        log.close()
    assert errors == [] and len(opened) == 4
    assert raw_rows(postgresql_url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]


def test_a_database_from_a_newer_program_is_refused(postgresql_url: str) -> None:
    QueryLog.open(postgresql_url).close()
    with psycopg.connect(postgresql_url, autocommit=True) as db:
        db.execute("UPDATE schema_version SET version = version + 1")
    with pytest.raises(QueryLogError, match="newer"):
        QueryLog.open(postgresql_url)


def test_a_password_is_never_shown() -> None:
    assert shown("postgresql://kb:s3cret@db:5432/kb") == "postgresql://kb:***@db:5432/kb"
    assert shown(Path("var/querylog.sqlite")) == "var/querylog.sqlite"


# --- the writer: feedback across replicas, failures -------------------------------------------------------------


def record(writer: LogWriter, question_id: str) -> None:
    writer.record(question_id=question_id, question=PERSONAL, answer="答", answerable=True, confidence=0.9,
                  citations=[], latency_ms=1.0, client="c", channel="api")


def test_feedback_reaches_a_question_another_replica_answered(postgresql_url: str) -> None:
    replica_a, replica_b = LogWriter(postgresql_url), LogWriter(postgresql_url)
    try:
        record(replica_a, "asked-on-a")
        assert replica_a.flush()
        assert replica_b.feedback("asked-on-a", helpful=False, comment="打13800138000") == "queued"
        assert replica_b.feedback("never-asked", helpful=True, comment=None) == "unknown"
        assert replica_b.flush()
        [entry] = replica_a.reader().recent(10)
        assert [(f["helpful"], f["comment"]) for f in entry["feedback"]] == [(False, "打138****8000")]
    finally:
        replica_a.close()
        replica_b.close()


def wait_for_a_failed_write(writer: LogWriter) -> None:
    """Until the writer has tried and failed (flush returns at once once it fails; no clock is judged)."""
    for _ in range(600):
        if writer.health(details=True)["failed_writes"]:
            return
        writer.flush(0.1)
    raise AssertionError("the writer never tried")


def test_a_database_that_comes_later_gets_what_was_kept_meanwhile(postgresql_server: str) -> None:
    url = postgresql_server.rsplit("/", 1)[0] + "/created_later"
    writer = LogWriter(url)
    try:
        record(writer, "q1")  # returns at once: nothing here waits for the database
        wait_for_a_failed_write(writer)
        assert writer.health() == {"ok": False, "pending": 1}
        assert writer.feedback("q1", helpful=True, comment=None) == "log_down", "kept, and the caller is told"
        with psycopg.connect(postgresql_server, autocommit=True) as admin:
            admin.execute("CREATE DATABASE created_later")
        assert writer.flush(timeout_s=120)
        [entry] = writer.reader().recent(10)
        assert entry["question_id"] == "q1" and [f["helpful"] for f in entry["feedback"]] == [True]
    finally:
        writer.close()


def test_a_connection_lost_is_opened_again(postgresql_url: str, postgresql_server: str) -> None:
    writer = LogWriter(postgresql_url)
    try:
        record(writer, "before")
        assert writer.flush()
        with psycopg.connect(postgresql_server, autocommit=True) as admin:  # as a PostgreSQL restart does
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (postgresql_url.rsplit("/", 1)[1],))
        record(writer, "after")
        assert writer.flush(timeout_s=120)
        assert [e["question_id"] for e in writer.reader().recent(10)] == ["after", "before"]
    finally:
        writer.close()


def test_a_database_down_for_long_keeps_the_newest_records_in_bounded_memory() -> None:
    writer = LogWriter(dead_url(), capacity=5)
    for n in range(8):
        record(writer, f"q{n}")
    details = writer.health(details=True)
    assert details["pending"] <= 5 and details["dropped"] >= 3
    writer.close(timeout_s=0.1)


# --- WeChat users' state ----------------------------------------------------------------------------------------


@pytest.fixture
def two_replicas(postgresql_url: str) -> Iterator[tuple[SharedDatabase, SharedDatabase]]:
    QueryLog.open(postgresql_url).close()
    shared = SharedDatabase(postgresql_url), SharedDatabase(postgresql_url)
    yield shared
    for database in shared:
        database.close()


def test_a_wechat_users_conversation_is_the_same_on_every_replica(
        two_replicas: tuple[SharedDatabase, SharedDatabase], postgresql_url: str) -> None:
    a, b = (SharedConversations(shared, Conversations()) for shared in two_replicas)
    a.add("wechat:user", "信访事项多久办结？")
    b.add("wechat:user", "我的手机13800138000，那要是不满意呢？")
    assert a.history("wechat:user") == ("信访事项多久办结？", "我的手机138****8000，那要是不满意呢？")
    assert "13800138000" not in repr(raw_rows(postgresql_url, "SELECT questions FROM conversations"))
    assert b.history("wechat:another") == ()
    a.forget("wechat:user")
    assert b.history("wechat:user") == ()


def test_a_retry_reaching_the_other_replica_is_not_answered_again(
        two_replicas: tuple[SharedDatabase, SharedDatabase]) -> None:
    from server.wechat import RETRY_CACHE_TTL_S, _ReplyCache

    a, b = (SharedReplies(shared, _ReplyCache(), RETRY_CACHE_TTL_S) for shared in two_replicas)
    assert a.claim("user:1") and not b.claim("user:1")
    assert b.get("user:1") is None, "still being answered on a"
    a.put("user:1", "答：60日内办结")
    assert b.get("user:1") == "答：60日内办结"
    assert b.claim("user:2")


def test_wechat_state_falls_back_to_memory_while_the_database_is_down() -> None:
    down = SharedDatabase(dead_url())
    conversations = SharedConversations(down, Conversations())
    conversations.add("wechat:user", "信访事项多久办结？")
    assert conversations.history("wechat:user") == ("信访事项多久办结？",)
    from server.wechat import RETRY_CACHE_TTL_S, _ReplyCache

    replies = SharedReplies(down, _ReplyCache(), RETRY_CACHE_TTL_S)
    assert replies.claim("user:1") and not replies.claim("user:1")
    replies.put("user:1", "答")
    assert replies.get("user:1") == "答"
    down.close()


# --- two replicas of the service --------------------------------------------------------------------------------

FIRST = "集市摊位费每天多少钱"
FOLLOW_UP = "那要是不交呢？"


def replica(small: tuple[Settings, KnowledgeBase], query_log: LogTarget) -> ServiceState:
    """A service as one replica of a deployment runs it: the shared log, the shared secret."""
    return make_service(small, Path("unused"), query_log=query_log, conversation_secret="shared-secret")


@pytest.mark.slow
def test_whichever_replica_answers_feedback_and_follow_ups_work(small: tuple[Settings, KnowledgeBase],
                                                                postgresql_url: str) -> None:
    a, b = replica(small, postgresql_url), replica(small, postgresql_url)
    try:
        with TestClient(create_app(a)) as on_a, TestClient(create_app(b)) as on_b:
            first = on_a.post("/api/ask", json={"question": FIRST}).json()
            assert a.log.flush()
            feedback = on_b.post("/api/feedback", json={"question_id": first["question_id"], "helpful": False})
            assert feedback.status_code == 200, feedback.text
            second = on_b.post("/api/ask", json={"question": FOLLOW_UP, "conversation_id": first["conversation_id"]})
            assert second.status_code == 200
            client = "testclient"
            assert b.tokens.read(first["conversation_id"], client) == (FIRST,), "b reads a's conversation"
            assert a.tokens.read(second.json()["conversation_id"], client) == (FIRST, FOLLOW_UP)
            other = TestClient(create_app(b), client=("203.0.113.7", 40000))
            stolen = other.post("/api/ask", json={"question": FOLLOW_UP, "conversation_id": first["conversation_id"]})
            assert b.tokens.read(stolen.json()["conversation_id"], "203.0.113.7") == (FOLLOW_UP,)

            assert "十元" in wechat(on_a, FIRST, user="villager")
            wechat(on_b, FOLLOW_UP, user="villager")
            assert a.conversations.history("wechat:villager") == (FIRST, FOLLOW_UP)
            assert a.log.flush() and b.log.flush()
            entries = b.log.reader().recent(10)  # before the clients close their services
        assert [f["helpful"] for e in entries if e["question_id"] == first["question_id"] for f in e["feedback"]] \
            == [False]
        assert sorted(e["channel"] for e in entries) == ["api", "api", "api", "wechat", "wechat"]
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_answers_go_on_while_postgresql_is_down(small: tuple[Settings, KnowledgeBase]) -> None:
    service = replica(small, dead_url())
    try:
        with TestClient(create_app(service)) as client:
            answered = client.post("/api/ask", json={"question": FIRST})
            assert answered.status_code == 200 and answered.json()["answerable"]
            assert "十元" in wechat(client, FIRST, user="villager")
            wait_for_a_failed_write(service.log)
            assert client.get("/readyz").json()["query_log"] == {"ok": False, "pending": 2}
            feedback = client.post("/api/feedback", json={"question_id": answered.json()["question_id"],
                                                          "helpful": True})
            assert feedback.status_code == 503 and feedback.json()["error"]["code"] == "log_unavailable"
    finally:
        service.close()
