"""Every question asked, its answer and the citizens' feedback, in SQLite, so staff can see what the knowledge base
cannot answer yet.

Personal data is masked (kb.text.personal) before anything is written: the file never holds a phone number or
身份证号.

One connection is shared by all threads and every use of it holds a lock: SQLite writes one transaction at a time
anyway, and a single connection can be closed deterministically. The file uses a rollback journal, not WAL: WAL
maps a shared-memory file (-shm) into the process, and a failed write to mapped memory (disk full, a file that
cannot grow) kills the process with SIGBUS; with a journal a full disk is an ordinary error the service survives.
Other processes (a review script, `kb report`) still read it; each write holds the file for a millisecond.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from kb.errors import KnowledgeBaseError
from kb.text.personal import mask_personal_data

#: Migration i brings a database from user_version i to i + 1; append, never edit, when the schema changes.
_MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE questions (
            seq INTEGER PRIMARY KEY, question_id TEXT NOT NULL UNIQUE, asked_at TEXT NOT NULL,
            question TEXT NOT NULL, normalized TEXT NOT NULL, answer TEXT NOT NULL, answerable INTEGER NOT NULL,
            confidence REAL NOT NULL, citations TEXT NOT NULL, latency_ms REAL NOT NULL, client TEXT,
            channel TEXT NOT NULL
        )""",
        "CREATE INDEX questions_normalized ON questions (normalized)",
        """CREATE TABLE feedback (
            seq INTEGER PRIMARY KEY, question_id TEXT NOT NULL REFERENCES questions (question_id),
            given_at TEXT NOT NULL, helpful INTEGER NOT NULL, comment TEXT
        )""",
        "CREATE INDEX feedback_question ON feedback (question_id)",
    ),
]
SCHEMA_VERSION = len(_MIGRATIONS)
#: Removed from the end of a question before grouping (after NFKC, so full-width ？！ and … are already ASCII).
_TRAILING_PUNCTUATION = "?!.,;:~。、"


class QueryLogError(KnowledgeBaseError):
    """The query log file cannot be used as it is."""


def normalize_question(question: str) -> str:
    """The grouping key: the same question typed with other spacing, width or final punctuation is one question."""
    folded = "".join(unicodedata.normalize("NFKC", question).split())
    return folded.rstrip(_TRAILING_PUNCTUATION).casefold()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class QueryLog:
    """The questions asked of the knowledge base; safe to share between threads."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._lock = threading.RLock()  # re-entered by record() inside transaction()

    @classmethod
    def open(cls, path: Path) -> QueryLog:
        """Open the log at `path`, creating it (and its folder) or upgrading its schema as needed."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. a file where the folder should be
            raise QueryLogError(f"cannot create the folder of query log {path}: {exc.strerror} ({exc.filename})"
                                ) from exc
        try:
            db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise QueryLogError(f"query log {path} cannot be opened ({exc})") from exc
        try:
            if db.execute("PRAGMA journal_mode = DELETE").fetchone()[0] != "delete":
                raise sqlite3.DatabaseError("cannot leave WAL mode (another process has the file open in WAL)")
            db.execute("PRAGMA foreign_keys = ON")
            _migrate(db, path)
        except BaseException as exc:
            db.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise QueryLogError(f"query log {path} is unusable ({exc}): move it away to start a new one") from exc
            raise
        return cls(db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> QueryLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several writes as one transaction: one wait for the file's lock and one sync to disk for all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a failed COMMIT (disk full) leaves it open
                    self._db.execute("ROLLBACK")
                raise

    def record(self, question: str, answer: str, answerable: bool, confidence: float, citations: list[str],
               latency_ms: float, client: str | None = None, channel: str = "api",
               question_id: str | None = None) -> str:
        """Store one question and its answer, personal data masked; returns the id feedback refers to."""
        question_id = question_id or uuid.uuid4().hex
        masked = mask_personal_data(question)
        with self._lock:
            self._db.execute(
                "INSERT INTO questions (question_id, asked_at, question, normalized, answer, answerable, confidence,"
                " citations, latency_ms, client, channel) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (question_id, _now(), masked, mask_personal_data(normalize_question(masked)),
                 mask_personal_data(answer), answerable,
                 confidence, json.dumps(citations, ensure_ascii=False), latency_ms, client, channel),
            )
        return question_id

    def add_feedback(self, question_id: str, helpful: bool, comment: str | None) -> bool:
        """Add one more verdict on an answer (earlier ones are kept); False if no such question was recorded."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO feedback (question_id, given_at, helpful, comment)"
                " SELECT question_id, ?, ?, ? FROM questions WHERE question_id = ?",
                (_now(), helpful, None if comment is None else mask_personal_data(comment), question_id),
            )
        return cursor.rowcount == 1

    def unanswered(self, limit: int = 50) -> list[dict]:
        """Questions that could not be answered or whose answer was rated unhelpful, most often asked first.

        Askings that differ only in spacing, width or final punctuation are one entry, shown in its latest wording.
        """
        with self._lock:
            rows = self._db.execute(
                # SQLite takes the bare columns (question, asked_at) from the row holding MAX(seq): the latest asking.
                """WITH negative AS (SELECT question_id, COUNT(*) AS n FROM feedback WHERE NOT helpful
                                     GROUP BY question_id)
                   SELECT q.question, q.normalized, COUNT(*) AS asked, q.asked_at, COALESCE(SUM(negative.n), 0),
                          MAX(q.seq) AS latest
                   FROM questions q LEFT JOIN negative USING (question_id)
                   WHERE NOT q.answerable OR negative.n > 0
                   GROUP BY q.normalized
                   ORDER BY asked DESC, latest DESC
                   LIMIT ?""",
                (limit,),
            ).fetchall()
        return [{"question": question, "normalized": normalized, "count": count, "last_asked": last_asked,
                 "negative_feedback": negative} for question, normalized, count, last_asked, negative, _ in rows]

    def recent(self, limit: int = 50) -> list[dict]:
        """The latest questions, newest first, each with all the feedback it got, oldest first."""
        with self._lock:
            rows = self._db.execute(
                """SELECT q.question_id, q.asked_at, q.question, q.answer, q.answerable, q.confidence, q.citations,
                          q.latency_ms, q.client, q.channel, f.given_at, f.helpful, f.comment
                   FROM (SELECT * FROM questions ORDER BY seq DESC LIMIT ?) q
                   LEFT JOIN feedback f USING (question_id)
                   ORDER BY q.seq DESC, f.seq""",
                (limit,),
            ).fetchall()
        entries: dict[str, dict] = {}
        for (question_id, asked_at, question, answer, answerable, confidence, citations, latency_ms, client, channel,
             given_at, helpful, comment) in rows:
            entry = entries.setdefault(question_id, {
                "question_id": question_id, "asked_at": asked_at, "question": question, "answer": answer,
                "answerable": bool(answerable), "confidence": confidence, "citations": json.loads(citations),
                "latency_ms": latency_ms, "client": client, "channel": channel, "feedback": [],
            })
            if given_at is not None:
                entry["feedback"].append({"given_at": given_at, "helpful": bool(helpful), "comment": comment})
        return list(entries.values())


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION; the write lock makes two processes opening a new file at once safe."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise QueryLogError(f"query log {path} has schema version {version}, newer than this program's "
                                f"{SCHEMA_VERSION}: upgrade the program or use another log file")
        for migration in _MIGRATIONS[version:]:
            for statement in migration:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
