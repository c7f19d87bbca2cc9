"""Holding up under abuse, without a model: staff keys checked before bodies, bounded admission of questions, the
question log's writer thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from server.admission import Admission
from server.app import build_app
from server.errors import ApiError, ClientGone
from server.logwriter import LogWriter
from server.querylog import QueryLog
from server.settings import ServerSettings

KEY = "staff-key-for-tests"


def call(app: object, path: str, headers: dict[str, str], body_chunks: int = 1000) -> tuple[int, int]:
    """(status, body messages the app read) for a POST whose body is `body_chunks` chunks of 64 KB."""
    read = 0
    statuses: list[int] = []

    async def receive() -> dict:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": read < body_chunks}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
             + [(b"content-type", b"multipart/form-data; boundary=x")],
             "client": ("198.51.100.9", 5000), "server": ("127.0.0.1", 8000), "scheme": "http",
             "http_version": "1.1", "root_path": "", "app": app}
    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    return statuses[0], read


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read() -> None:
    app = build_app(replace(ServerSettings(), admin_key=KEY))
    assert call(app, "/api/admin/documents", {}) == (401, 0)
    assert call(app, "/api/admin/documents", {"Authorization": "Bearer wrong"}) == (401, 0)
    disabled = build_app(replace(ServerSettings(), admin_key=""))
    assert call(disabled, "/api/admin/documents", {"Authorization": "Bearer "}) == (403, 0)


def test_wrong_admin_keys_are_rate_limited_per_client() -> None:
    app = build_app(replace(ServerSettings(), admin_key=KEY))
    statuses = [call(app, "/api/admin/reload", {"Authorization": f"Bearer guess{n}"})[0] for n in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]


# --- admission ------------------------------------------------------------------------------------------------------


def holding(admission: Admission) -> tuple[threading.Thread, threading.Event]:
    """A question that holds its worker until the returned event is set (and has started when this returns)."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(30)

    thread = threading.Thread(target=admission.run, args=(hold,))
    thread.start()
    assert started.wait(30)
    return thread, release


def test_beyond_the_workers_and_the_waiting_room_a_question_is_refused_at_once() -> None:
    admission = Admission(workers=1, waiting=0, wait_s=30)
    holder, release = holding(admission)
    with pytest.raises(ApiError) as refused:
        admission.run(lambda: "never")
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "30"}
    release.set()
    holder.join(30)
    assert admission.run(lambda: "free again") == "free again"


def test_a_question_in_the_waiting_room_runs_when_a_worker_is_free() -> None:
    admission = Admission(workers=1, waiting=1, wait_s=30)
    holder, release = holding(admission)
    results: list[str] = []
    waiting = threading.Thread(target=lambda: results.append(admission.run(lambda: "waited")))
    waiting.start()
    release.set()
    holder.join(30)
    waiting.join(30)
    assert results == ["waited"]


def test_a_question_whose_client_left_while_waiting_is_never_worked_on() -> None:
    admission = Admission(workers=1, waiting=0, wait_s=1)
    worked = []
    with pytest.raises(ClientGone):
        admission.run(lambda: worked.append(1), gone=lambda: True)
    assert worked == [] and admission.run(lambda: "next") == "next", "the slot was given back"


def test_a_wait_that_lasts_too_long_is_a_503() -> None:
    admission = Admission(workers=1, waiting=1, wait_s=0.05)
    holder, release = holding(admission)
    with pytest.raises(ApiError) as refused:
        admission.run(lambda: "late")
    release.set()
    holder.join(30)
    assert refused.value.code == "busy"


# --- the question log's writer -----------------------------------------------------------------------------------


def record(writer: LogWriter, n: int) -> str:
    question_id = f"q{n}"
    writer.record(question_id=question_id, question=f"问题{n}，电话13800138000", answer="答", answerable=True,
                  confidence=0.9, citations=[], latency_ms=1.0, client="c", channel="api")
    return question_id


def test_the_writer_writes_in_order_and_masks(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "log.sqlite")
    ids = [record(writer, n) for n in range(250)]
    assert writer.feedback(ids[0], helpful=False, comment="打13800138000") == "queued"
    assert writer.flush()
    entries = writer.reader().recent(1000)
    assert [e["question_id"] for e in entries] == ids[::-1]
    assert "13800138000" not in repr(entries) and entries[-1]["feedback"][0]["helpful"] is False
    assert writer.health() == {"ok": True, "pending": 0}
    writer.close()


def test_feedback_on_a_question_the_log_never_held_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    with QueryLog.open(path) as earlier:  # a question answered before a restart
        old = earlier.record("旧问题", "答", True, 0.9, [], 1.0)
    writer = LogWriter(path)
    assert writer.feedback("never-asked", helpful=True, comment=None) == "unknown"
    assert writer.feedback(old, helpful=True, comment=None) == "queued"
    writer.close()
    with QueryLog.open(path) as log:
        assert [f["helpful"] for f in log.recent(1)[0]["feedback"]] == [True]


def test_a_locked_log_holds_up_only_the_writer_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    writer = LogWriter(path)
    assert writer.flush()
    staff_tool = sqlite3.connect(path, isolation_level=None)
    staff_tool.execute("BEGIN EXCLUSIVE")
    ids = [record(writer, n) for n in range(3)]  # returns at once: nothing here waits for the file
    assert writer.health()["pending"] == 3
    staff_tool.execute("ROLLBACK")
    staff_tool.close()
    assert writer.flush(timeout_s=120)
    assert [e["question_id"] for e in writer.reader().recent(10)] == ids[::-1]
    writer.close()


def test_a_log_down_for_long_keeps_the_newest_records_in_bounded_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    writer = LogWriter(blocker / "log.sqlite", capacity=5)
    for n in range(8):
        record(writer, n)
    details = writer.health(details=True)
    assert details["pending"] <= 5 and details["dropped"] >= 3
    writer.close(timeout_s=0.1)


# --- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env, value", [
    ("KB_RATE_PER_MINUTE", "0"), ("KB_RATE_PER_MINUTE", "-5"), ("KB_RATE_PER_MINUTE", "nan"),
    ("KB_RATE_BURST", "0"), ("KB_RATE_BURST", "lots"), ("KB_MAX_CONCURRENT", "0"), ("KB_MAX_WAIT", "0"),
    ("KB_TRUSTED_PROXIES", "notanip"), ("KB_TRUSTED_PROXIES", "10.0.0.0/99"),
])
def test_a_bad_setting_stops_the_server_with_one_line_naming_it(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str],
                                                                env: str, value: str) -> None:
    from cli.main import EXIT_ERROR, main

    monkeypatch.setenv(env, value)
    assert main(["serve", "--port", "1"]) == EXIT_ERROR
    error = capsys.readouterr().err.strip()
    assert error.startswith("错误:") and env in error and "\n" not in error and "Traceback" not in error
