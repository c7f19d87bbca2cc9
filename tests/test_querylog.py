"""The query log: a real SQLite file, personal data masked before it is written, shared by threads."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.querylog import SCHEMA_VERSION, QueryLog, QueryLogError, normalize_question


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "queries.sqlite"


@pytest.fixture
def log(log_path: Path) -> Iterator[QueryLog]:
    with QueryLog.open(log_path) as opened:
        yield opened


def ask(log: QueryLog, question: str, answerable: bool = True) -> str:
    return log.record(question, "答：请参见相关规定。", answerable, 0.8 if answerable else 0.1, [], 12.5)


def raw_rows(path: Path, sql: str) -> list[tuple]:
    """Read the file directly, as anyone with access to the disk could."""
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def test_record_stores_everything_and_recent_returns_it(log: QueryLog) -> None:
    question_id = log.record("居民养老保险怎么缴费？", "按年缴费，标准见第三条。", True, 0.87,
                             ["城乡居民养老保险办法 第三条", "实施细则 第五条"], 153.2, client="10.0.0.7", channel="wechat")
    [entry] = log.recent(10)
    assert len(question_id) == 32 and int(question_id, 16) >= 0
    assert entry["question_id"] == question_id
    assert entry["question"] == "居民养老保险怎么缴费？"
    assert entry["answer"] == "按年缴费，标准见第三条。"
    assert entry["answerable"] is True
    assert entry["confidence"] == pytest.approx(0.87)
    assert entry["citations"] == ["城乡居民养老保险办法 第三条", "实施细则 第五条"]
    assert entry["latency_ms"] == pytest.approx(153.2)
    assert (entry["client"], entry["channel"]) == ("10.0.0.7", "wechat")
    assert entry["asked_at"].startswith("20") and entry["asked_at"].endswith("+00:00")
    assert entry["feedback"] == []


def test_recent_is_newest_first_and_limited(log: QueryLog) -> None:
    ids = [ask(log, f"第{i}个问题") for i in range(5)]
    assert [e["question_id"] for e in log.recent(3)] == ids[:1:-1]
    assert log.recent(3)[0]["channel"] == "api" and log.recent(3)[0]["client"] is None


def test_personal_data_never_reaches_the_file(log: QueryLog, log_path: Path) -> None:
    question_id = log.record("我叫张三，身份证11010519491231002X，手机13800138000，社保卡没到怎么办？",
                             "请致电0755-86013388或发邮件至help@example.gov.cn查询。", False, 0.2, [], 40.0)
    assert log.add_feedback(question_id, False, "没用，请打我电话138 0013 8000，卡号6222021234567890")

    questions = raw_rows(log_path, "SELECT question, normalized, answer FROM questions")
    feedback = raw_rows(log_path, "SELECT comment FROM feedback")
    stored = repr(questions) + repr(feedback)
    for secret in ("11010519491231002X", "13800138000", "0013", "86013388", "help@example", "6222021234567890"):
        assert secret not in stored
    assert questions[0][0] == "我叫张三，身份证[身份证号]，手机138****8000，社保卡没到怎么办？"
    assert questions[0][2] == "请致电[电话]或发邮件至[邮箱]查询。"
    assert feedback == [("没用，请打我电话138****8000，卡号[银行卡号]",)]


def test_the_file_has_its_schema_version_and_maps_no_shared_memory(log: QueryLog, log_path: Path) -> None:
    """WAL's -shm file is mapped into the process: a write to it that cannot be backed (disk full) is a SIGBUS
    that kills the server. A rollback journal turns the same failure into an ordinary, catchable error."""
    log.record("问题", "回答", True, 0.9, [], 10.0)
    assert raw_rows(log_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert raw_rows(log_path, "PRAGMA journal_mode") == [("delete",)]
    assert not log_path.with_name(log_path.name + "-shm").exists()


def test_reopening_keeps_what_was_recorded(log_path: Path) -> None:
    with QueryLog.open(log_path) as log:
        question_id = ask(log, "公积金怎么提取")
    with QueryLog.open(log_path) as log:
        assert [e["question_id"] for e in log.recent(10)] == [question_id]


def test_a_log_from_a_newer_program_is_refused(log_path: Path) -> None:
    QueryLog.open(log_path).close()
    with sqlite3.connect(log_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(QueryLogError, match="newer"):
        QueryLog.open(log_path)


def test_a_file_that_is_not_a_database_is_refused(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(b"this is not sqlite, just some text " * 100)
    with pytest.raises(QueryLogError, match="unusable"):
        QueryLog.open(log_path)


def test_feedback_is_kept_every_time_it_is_given(log: QueryLog) -> None:
    question_id = ask(log, "低保怎么申请？")
    assert log.add_feedback(question_id, True, None)
    assert log.add_feedback(question_id, False, "没有说明需要哪些材料")
    feedback = log.recent(1)[0]["feedback"]
    assert [(f["helpful"], f["comment"]) for f in feedback] == [(True, None), (False, "没有说明需要哪些材料")]
    assert all(f["given_at"].endswith("+00:00") for f in feedback)


def test_feedback_on_an_unknown_question_is_refused_and_not_stored(log: QueryLog, log_path: Path) -> None:
    ask(log, "低保怎么申请？")
    assert log.add_feedback("0" * 32, False, "没用") is False
    assert raw_rows(log_path, "SELECT COUNT(*) FROM feedback") == [(0,)]


def test_unanswered_groups_by_normalised_text_most_frequent_first(log: QueryLog) -> None:
    for question in ("新生儿怎么上户口？", " 新生儿怎么上户口", "新生儿 怎么上户口?", "新生儿怎么上户口。！"):
        ask(log, question, answerable=False)
    for question in ("电动车上牌需要什么材料", "电动车上牌需要什么材料？"):
        ask(log, question, answerable=False)
    ask(log, "宠物狗怎么办证", answerable=False)
    ask(log, "新生儿怎么上户口", answerable=True)  # answered and not rated down: not listed, not counted

    entries = log.unanswered()
    assert [(e["normalized"], e["count"]) for e in entries] == [
        ("新生儿怎么上户口", 4), ("电动车上牌需要什么材料", 2), ("宠物狗怎么办证", 1),
    ]
    assert entries[0]["question"] == "新生儿怎么上户口。！"  # the latest wording that is listed
    assert entries[1]["question"] == "电动车上牌需要什么材料？"
    assert [e["question"] for e in log.unanswered(limit=2)] == [e["question"] for e in entries[:2]]


def test_unanswered_includes_answers_rated_unhelpful_and_counts_the_ratings(log: QueryLog) -> None:
    rated_down = ask(log, "医保怎么异地报销？")
    assert log.add_feedback(rated_down, False, "答非所问")
    assert log.add_feedback(rated_down, False, None)
    rated_up = ask(log, "医保怎么异地报销")
    assert log.add_feedback(rated_up, True, None)
    never_answered = ask(log, "医保怎么异地报销?", answerable=False)
    ask(log, "驾照到期怎么换证")

    [entry] = log.unanswered()
    assert entry["normalized"] == "医保怎么异地报销"
    assert entry["count"] == 2  # the unhelpful answer and the unanswerable one; not the one rated helpful
    assert entry["negative_feedback"] == 2
    assert entry["last_asked"] == next(e["asked_at"] for e in log.recent(10) if e["question_id"] == never_answered)


def test_ties_in_unanswered_put_the_latest_asked_first(log: QueryLog) -> None:
    ask(log, "早问的问题", answerable=False)
    ask(log, "晚问的问题", answerable=False)
    assert [e["question"] for e in log.unanswered()] == ["晚问的问题", "早问的问题"]


@pytest.mark.parametrize(
    ("question", "key"),
    [
        ("如何办理居住证？", "如何办理居住证"),
        ("  如何 办理\t居住证 ?! ", "如何办理居住证"),
        ("如何办理居住证。。。", "如何办理居住证"),
        ("ＥＴＣ怎么办理？", "etc怎么办理"),
        ("居住证（试行）办法", "居住证(试行)办法"),
    ],
)
def test_normalize_question(question: str, key: str) -> None:
    assert normalize_question(question) == key


def test_many_threads_record_at_once_and_every_row_arrives(log: QueryLog, log_path: Path) -> None:
    threads, per_thread = 8, 40
    start = threading.Barrier(threads)
    ids: list[list[str]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                question_id = log.record(f"线程{n}的第{i}个问题，手机1380013{n:04d}", "答", i % 2 == 0, 0.5, [], 1.0)
                ids[n].append(question_id)
                assert log.add_feedback(question_id, False, None)
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    all_ids = {question_id for per in ids for question_id in per}
    assert len(all_ids) == threads * per_thread
    assert {row[0] for row in raw_rows(log_path, "SELECT question_id FROM questions")} == all_ids
    assert raw_rows(log_path, "SELECT COUNT(*) FROM feedback") == [(threads * per_thread,)]
    assert raw_rows(log_path, "SELECT COUNT(*) FROM questions WHERE question LIKE '%13800130%'") == [(0,)]
    assert len(log.unanswered(limit=1000)) == threads * per_thread


@pytest.mark.parametrize(
    ("question", "secret"),
    [
        ("15912345678元旦后联系我，社保卡怎么补办？", "1234"),
        ("158 1234 5678元旦后联系我", "1234"),
        ("我的手机158.1234.5678，公积金怎么提取", "1234"),
        ("我的手机158 1234 5678，公积金怎么提取", "1234"),
        ("我的手机158-1234-5678，公积金怎么提取", "1234"),
        ("我的手机+86 158 1234 5678，公积金怎么提取", "1234"),
        ("我的手机１５８１２３４５６７８，公积金怎么提取", "1234"),
        ("我的手机１５８．１２３４．５６７８，公积金怎么提取", "1234"),
        ("我的手机１５８　１２３４　５６７８，公积金怎么提取", "1234"),
        ("身份证11010519491231002X元旦前到期怎么办", "19491231"),
        ("请回复到ｚｈａｎｇｓａｎ＠ｅｘａｍｐｌｅ．ｃｏｍ。", "zhangsan"),
        ("请回复到ＺｈａｎｇＳａｎ@example．com", "zhangsan"),
        ("请回复到zhangsan@example。com。", "zhangsan"),
    ],
)
def test_evasive_spellings_are_masked_in_both_stored_columns(log: QueryLog, log_path: Path, question: str,
                                                             secret: str) -> None:
    """`normalized` is the NFKC form of the question: full-width or spaced spellings must be masked in both."""
    ask(log, question, answerable=False)
    [(stored, normalized)] = raw_rows(log_path, "SELECT question, normalized FROM questions")
    for column in (stored, normalized):
        assert secret not in normalize_question(column)


def test_a_number_joined_to_other_digits_by_normalizing_is_still_masked(log: QueryLog, log_path: Path) -> None:
    ask(log, "年龄 60 13800138000，养老金怎么领", answerable=False)
    [(stored, normalized)] = raw_rows(log_path, "SELECT question, normalized FROM questions")
    assert "0013" not in stored
    assert "0013" not in normalized
