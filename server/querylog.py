"""Every question asked, its answer and the citizens' feedback, in SQLite or PostgreSQL, so staff can see what the
knowledge base cannot answer yet.

Personal data is masked (kb.text.personal) before anything is written: the log never holds a phone number or
身份证号.

SQLite (a file, the default) serves one process. One connection is shared by all threads and every use of it
holds a lock: SQLite writes one transaction at a time anyway, and a single connection can be closed
deterministically. The file uses a rollback journal, not WAL: WAL maps a shared-memory file (-shm) into the
process, and a failed write to mapped memory (disk full, a file that cannot grow) kills the process with SIGBUS;
with a journal a full disk is an ordinary error the service survives. Other processes (a review script,
`kb report`) still read it; each write holds the file for a millisecond.

PostgreSQL (KB_QUERY_LOG=postgresql://…) is for replicas: one log for all of them, so feedback on a question
another replica answered finds it. The same schema, statements and migrations; _Dialect holds what differs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from kb.errors import KnowledgeBaseError
from kb.text.personal import mask_personal_data

if TYPE_CHECKING:
    import psycopg

#: Where the log is: a SQLite file, or a PostgreSQL database named by its URL (postgresql://user@host:port/db).
LogTarget = Path | str

#: Migration i brings a database from schema version i to i + 1; append, never edit, when the schema changes.
#: {serial}, {bool} and {real} are the dialect's column types.
_MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE questions (
            seq {serial}, question_id TEXT NOT NULL UNIQUE, asked_at TEXT NOT NULL,
            question TEXT NOT NULL, normalized TEXT NOT NULL, answer TEXT NOT NULL, answerable {bool} NOT NULL,
            confidence {real} NOT NULL, citations TEXT NOT NULL, latency_ms {real} NOT NULL, client TEXT,
            channel TEXT NOT NULL
        )""",
        "CREATE INDEX questions_normalized ON questions (normalized)",
        """CREATE TABLE feedback (
            seq {serial}, question_id TEXT NOT NULL REFERENCES questions (question_id),
            given_at TEXT NOT NULL, helpful {bool} NOT NULL, comment TEXT
        )""",
        "CREATE INDEX feedback_question ON feedback (question_id)",
    ),
    (  # what replicas share of each WeChat user (server/shared.py); unused with SQLite, which one process owns
        """CREATE TABLE conversations (
            key TEXT PRIMARY KEY, updated_at {real} NOT NULL, questions TEXT NOT NULL
        )""",
        """CREATE TABLE wechat_replies (
            retry_key TEXT PRIMARY KEY, claimed_at {real} NOT NULL, reply TEXT
        )""",
    ),
]
SCHEMA_VERSION = len(_MIGRATIONS)
#: Removed from the end of a question before grouping (after NFKC, so full-width ？！ and … are already ASCII).
_TRAILING_PUNCTUATION = "?!.,;:~。、"
#: Whoever migrates a PostgreSQL log holds this advisory lock, so that replicas starting at once migrate once.
_MIGRATION_LOCK = 0x6B62_6C6F67


class QueryLogError(KnowledgeBaseError):
    """The query log cannot be used as it is."""


def is_postgresql(target: LogTarget) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def log_target(raw: str) -> LogTarget:
    """KB_QUERY_LOG's value: a PostgreSQL URL as it is, anything else a file path."""
    return raw if is_postgresql(raw) else Path(raw).expanduser()


def shown(target: LogTarget) -> str:
    """The target as messages and /readyz may show it: a URL without its password."""
    if not is_postgresql(target):
        return str(target)
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


@dataclass(frozen=True)
class _Dialect:
    """What SQLite and PostgreSQL spell differently; everything else is shared."""

    types: dict[str, str]
    begin: str
    #: Statements run first in the migration's transaction (a lock, the version's own table).
    before_migrating: tuple[str, ...]
    read_version: str
    write_version: tuple[str, ...]  # {version} is the new version
    placeholder: str

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.placeholder)


_SQLITE = _Dialect(
    types={"serial": "INTEGER PRIMARY KEY", "bool": "INTEGER", "real": "REAL"},
    begin="BEGIN IMMEDIATE",  # the write lock at once: two writers never deadlock upgrading a read lock
    before_migrating=(),
    read_version="PRAGMA user_version",
    write_version=("PRAGMA user_version = {version}",),
    placeholder="?",
)
_POSTGRESQL = _Dialect(
    types={"serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "bool": "BOOLEAN",
           "real": "DOUBLE PRECISION"},
    begin="BEGIN",
    before_migrating=(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})",
                      "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"),
    read_version="SELECT COALESCE(MAX(version), 0) FROM schema_version",
    write_version=("DELETE FROM schema_version", "INSERT INTO schema_version (version) VALUES ({version})"),
    placeholder="%s",
)


class Database:
    """A connection to the log's database in its dialect: what QueryLog and the replicas' shared state
    (server/shared.py) write through. Not thread-safe: its owner holds a lock."""

    def __init__(self, db: sqlite3.Connection | psycopg.Connection[Any], dialect: _Dialect,
                 target: LogTarget) -> None:
        self._db = db
        self.dialect = dialect
        self.target = target

    def execute(self, statement: str, params: Sequence[object] = ()) -> Any:
        return self._db.execute(self.dialect.sql(statement), params)

    @property
    def in_transaction(self) -> bool:
        if isinstance(self._db, sqlite3.Connection):
            return self._db.in_transaction
        from psycopg.pq import TransactionStatus

        return self._db.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR)

    @property
    def broken(self) -> bool:
        """Whether the connection is lost (a PostgreSQL server restarted): only a new one can go on."""
        return not isinstance(self._db, sqlite3.Connection) and (self._db.closed or self._db.broken)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.execute(self.dialect.begin)
        try:
            yield
            self.execute("COMMIT")
        except BaseException:
            if self.in_transaction and not self.broken:  # a failed COMMIT (disk full) leaves it open
                self.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()


def connect(target: LogTarget, timeout_s: float = 10.0, read_only: bool = False) -> Database:
    """A connection to the log at `target`, schema migrated unless `read_only` (then the log must exist).
    `timeout_s` bounds waiting for a lock (SQLite) or for the server and every statement (PostgreSQL)."""
    if isinstance(target, str) and is_postgresql(target):
        database = _connect_postgresql(target, timeout_s, read_only)
    else:
        database = _connect_sqlite(Path(target), timeout_s, read_only)
    if read_only:
        return database
    try:
        _migrate(database)
    except database_errors() as exc:
        database.close()
        raise QueryLogError(f"query log {shown(target)} is unusable ({exc}): move it away to start a new one"
                            ) from exc
    except BaseException:
        database.close()
        raise
    return database


def database_errors() -> tuple[type[Exception], ...]:
    """What a failing database raises: sqlite3's errors, and psycopg's where it is installed."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


def _connect_sqlite(path: Path, timeout_s: float, read_only: bool) -> Database:
    if read_only:
        return Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout_s), _SQLITE, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a file where the folder should be
        raise QueryLogError(f"cannot create the folder of query log {path}: {exc.strerror} ({exc.filename})"
                            ) from exc
    try:
        db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise QueryLogError(f"query log {path} cannot be opened ({exc})") from exc
    try:
        if db.execute("PRAGMA journal_mode = DELETE").fetchone()[0] != "delete":
            raise sqlite3.DatabaseError("cannot leave WAL mode (another process has the file open in WAL)")
        db.execute("PRAGMA foreign_keys = ON")
    except BaseException as exc:
        db.close()
        if isinstance(exc, sqlite3.DatabaseError):
            raise QueryLogError(f"query log {path} is unusable ({exc}): move it away to start a new one") from exc
        raise
    return Database(db, _SQLITE, path)


def _connect_postgresql(url: str, timeout_s: float, read_only: bool) -> Database:
    try:
        import psycopg
    except ImportError:
        raise QueryLogError("KB_QUERY_LOG names a PostgreSQL database but psycopg is not installed: "
                            "pip install 'zhengwu-kb[postgres]'") from None
    try:
        # libpq waits at least 2 s to connect; statements are bounded too, so a hung server holds no one forever.
        db = psycopg.connect(url, autocommit=True, connect_timeout=max(2, round(timeout_s)))
        db.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
        if read_only:
            db.execute("SET default_transaction_read_only = on")
    except psycopg.Error as exc:
        raise QueryLogError(f"query log {shown(url)} cannot be opened ({exc})") from exc
    return Database(db, _POSTGRESQL, url)


def question_exists(target: LogTarget, question_id: str, timeout_s: float) -> bool | None:
    """Whether the log holds the question; None when it cannot be read now. A separate short-lived read-only
    connection, so that a write waiting on a lock does not make the asker wait too."""
    try:
        database = connect(target, timeout_s, read_only=True)
    except QueryLogError:
        return None
    except database_errors():
        return None
    try:
        row = database.execute("SELECT 1 FROM questions WHERE question_id = ?", (question_id,)).fetchone()
    except database_errors():
        return None
    finally:
        database.close()
    return row is not None


def normalize_question(question: str) -> str:
    """The grouping key: the same question typed with other spacing, width or final punctuation is one question."""
    folded = "".join(unicodedata.normalize("NFKC", question).split())
    return folded.rstrip(_TRAILING_PUNCTUATION).casefold()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class QueryLog:
    """The questions asked of the knowledge base; safe to share between threads."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._lock = threading.RLock()  # re-entered by record() inside transaction()

    @classmethod
    def open(cls, target: LogTarget) -> QueryLog:
        """Open the log at `target`, creating it (a file and its folder) or upgrading its schema as needed."""
        return cls(connect(target))

    @property
    def broken(self) -> bool:
        """Whether the log lost its connection (PostgreSQL restarted) and must be opened again."""
        return self._db.broken

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> QueryLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several writes as one transaction: one wait for the lock and one sync to disk for all."""
        with self._lock, self._db.transaction():
            yield

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
                """WITH negative AS (SELECT question_id, COUNT(*) AS n FROM feedback WHERE NOT helpful
                                     GROUP BY question_id),
                        listed AS (SELECT q.seq, q.normalized, COALESCE(negative.n, 0) AS n
                                   FROM questions q LEFT JOIN negative USING (question_id)
                                   WHERE NOT q.answerable OR negative.n > 0),
                        grouped AS (SELECT normalized, COUNT(*) AS asked, CAST(SUM(n) AS INTEGER) AS unhelpful,
                                           MAX(seq) AS latest
                                    FROM listed GROUP BY normalized)
                   SELECT q.question, g.normalized, g.asked, q.asked_at, g.unhelpful
                   FROM grouped g JOIN questions q ON q.seq = g.latest
                   ORDER BY g.asked DESC, g.latest DESC
                   LIMIT ?""",
                (limit,),
            ).fetchall()
        return [{"question": question, "normalized": normalized, "count": count, "last_asked": last_asked,
                 "negative_feedback": negative} for question, normalized, count, last_asked, negative in rows]

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


def _migrate(database: Database) -> None:
    """Bring the schema to SCHEMA_VERSION; the write lock makes two processes opening a new log at once safe."""
    dialect = database.dialect
    with database.transaction():
        for statement in dialect.before_migrating:
            database.execute(statement)
        version = database.execute(dialect.read_version).fetchone()[0]
        if version > SCHEMA_VERSION:
            raise QueryLogError(f"query log {shown(database.target)} has schema version {version}, newer than this "
                                f"program's {SCHEMA_VERSION}: upgrade the program or use another log")
        for migration in _MIGRATIONS[version:]:
            for statement in migration:
                database.execute(statement.format(**dialect.types))
        for statement in dialect.write_version:
            database.execute(statement.format(version=SCHEMA_VERSION))
