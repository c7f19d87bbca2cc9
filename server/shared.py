"""What replicas share of each WeChat user when the question log is PostgreSQL (KB_QUERY_LOG=postgresql://…):
their conversation (masked recent questions), and the replies to their messages by MsgId, since WeChat retries
a slow message and the retry may reach the other replica.

Both are read and written while a user waits for an answer, so the database must never hold an answer up or
fail it: statements time out after TIMEOUT_S, and while the database cannot be used each replica falls back to
its own memory (what a single process keeps anyway) and tries the database again after RETRY_S. Every write
goes to that memory too, so a replica that loses the database keeps what it saw itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from kb.text.personal import mask_personal_data
from server.conversations import Conversations, kept
from server.querylog import Database, LogTarget, QueryLogError, connect, database_errors, shown

log = logging.getLogger(__name__)

#: The longest a statement on the answer path may take.
TIMEOUT_S = 1.0
#: How long a replica uses only its memory after the database failed.
RETRY_S = 10.0

T = TypeVar("T")


class SharedDatabase:
    """One connection to the shared database, used one statement group at a time, reopened after failing."""

    def __init__(self, target: LogTarget, timeout_s: float = TIMEOUT_S) -> None:
        self.target = target
        self._timeout_s = timeout_s
        self._db: Database | None = None
        self._down_until = 0.0
        self._lock = threading.Lock()

    def run(self, work: Callable[[Database], T], fallback: Callable[[], T]) -> T:
        """work(database), in one transaction; fallback() when the database cannot be used now."""
        failures: tuple[type[Exception], ...] = (QueryLogError, *database_errors())
        with self._lock:
            if time.monotonic() < self._down_until:
                return fallback()
            try:
                if self._db is None:
                    self._db = connect(self.target, self._timeout_s)
                with self._db.transaction():
                    return work(self._db)
            except failures as exc:
                log.warning("shared state in %s not used for %.0f s: %s", shown(self.target), RETRY_S, exc)
                self._down_until = time.monotonic() + RETRY_S
                self._close()
        return fallback()

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    def close(self) -> None:
        with self._lock:
            self._close()


class SharedConversations:
    """Conversations by key (a WeChat user) in the shared database, as Conversations keeps them in memory."""

    def __init__(self, database: SharedDatabase, memory: Conversations) -> None:
        self._database = database
        self._memory = memory

    def history(self, key: str) -> tuple[str, ...]:
        return self._database.run(lambda db: self._read(db, key), lambda: self._memory.history(key))

    def _read(self, db: Database, key: str) -> tuple[str, ...]:
        row = db.execute("SELECT updated_at, questions FROM conversations WHERE key = ?", (key,)).fetchone()
        if row is None or time.time() - row[0] > self._memory.ttl_s:
            return ()
        return tuple(json.loads(row[1]))

    def add(self, key: str, question: str) -> None:
        self._memory.add(key, question)

        def write(db: Database) -> None:
            now = time.time()
            questions = kept((*self._read(db, key), question))
            db.execute("DELETE FROM conversations WHERE updated_at < ?", (now - self._memory.ttl_s,))
            db.execute("INSERT INTO conversations (key, updated_at, questions) VALUES (?, ?, ?)"
                       " ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at,"
                       " questions = excluded.questions",
                       (key, now, json.dumps(questions, ensure_ascii=False)))

        self._database.run(write, lambda: None)

    def forget(self, key: str) -> None:
        self._memory.forget(key)
        self._database.run(lambda db: _execute(db, "DELETE FROM conversations WHERE key = ?", key), lambda: None)


class ReplyMemory(Protocol):
    """A replica's own memory of the replies by message (server/wechat.py's _ReplyCache)."""

    def claim(self, key: str) -> bool: ...

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, reply: str) -> None: ...


class SharedReplies:
    """The replies to WeChat messages by retry key in the shared database, so that a retry of a message that
    one replica is answering is not answered again by the other: the same claim/get/put as the memory."""

    def __init__(self, database: SharedDatabase, memory: ReplyMemory, ttl_s: float) -> None:
        self._database = database
        self._memory = memory
        self._ttl_s = ttl_s

    def claim(self, key: str) -> bool:
        """True for the first delivery of `key` within the TTL, on any replica."""
        def claim(db: Database) -> bool | None:
            now = time.time()
            db.execute("DELETE FROM wechat_replies WHERE claimed_at < ?", (now - self._ttl_s,))
            return db.execute("INSERT INTO wechat_replies (retry_key, claimed_at) VALUES (?, ?)"
                              " ON CONFLICT (retry_key) DO NOTHING", (key, now)).rowcount == 1

        first = self._database.run(claim, lambda: None)
        if first is None:  # the database cannot tell: this replica's memory decides
            return self._memory.claim(key)
        if first:
            self._memory.claim(key)  # so that put() keeps the reply here too
        return first

    def get(self, key: str) -> str | None:
        def read(db: Database) -> str | None:
            row = db.execute("SELECT reply FROM wechat_replies WHERE retry_key = ?", (key,)).fetchone()
            return None if row is None else row[0]

        return self._database.run(read, lambda: self._memory.get(key))

    def put(self, key: str, reply: str) -> None:
        self._memory.put(key, reply)
        self._database.run(lambda db: _execute(db, "UPDATE wechat_replies SET reply = ? WHERE retry_key = ?",
                                               mask_personal_data(reply), key), lambda: None)


def _execute(db: Database, statement: str, *params: object) -> None:
    db.execute(statement, params)
