"""The question log off the answer path: answers hand their records to one writer thread and go on.

SQLite writes one transaction at a time, and a file locked by another process (a staff tool reading it) makes a
writer wait its busy timeout; a PostgreSQL server may be down or restarting. Written on the answer path, one
locked file stalled every answer for 10 s and queued them behind each other; here only this thread waits. The
same holds for a log that is full, read-only or cannot be created or reached: the service starts and answers
anyway, the writer retries (backing off up to MAX_RETRY_S, opening a lost connection again), and /readyz and
the counters say what is wrong. Records wait in a bounded queue meanwhile; beyond CAPACITY the oldest is
dropped and counted, so a log that stays down costs bounded memory.

Feedback goes through the same queue. Whether a question_id exists is known without the file for the questions
this process answered (the last KNOWN_IDS of them); for older ones, and with PostgreSQL for those another
replica answered, a short read decides.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from server.querylog import LogTarget, QueryLog, QueryLogError, question_exists, shown

log = logging.getLogger(__name__)

#: Records kept in memory while the log cannot be written.
CAPACITY = 1000
#: Records written in one transaction: a locked or slow file is waited for once per batch, not per record.
BATCH = 100
FIRST_RETRY_S = 0.5
MAX_RETRY_S = 30.0
#: Question ids this process issued, remembered so that feedback on them needs no read of the file.
KNOWN_IDS = 100_000
#: How long a feedback request may wait for the file to say whether an older question_id exists.
LOOKUP_TIMEOUT_S = 0.5

FeedbackVerdict = Literal["queued", "unknown", "log_down"]


@dataclass(frozen=True)
class _Record:
    kind: Literal["question", "feedback"]
    fields: dict

    def write(self, query_log: QueryLog) -> None:
        if self.kind == "question":
            query_log.record(**self.fields)
        else:  # feedback on a question the log does not hold is dropped by add_feedback itself
            query_log.add_feedback(**self.fields)


class LogWriter:
    """Thread-safe; `open_log` is called by the writer thread until it succeeds (again after the file broke)."""

    def __init__(self, path: LogTarget, open_log: Callable[[LogTarget], QueryLog] = QueryLog.open,
                 capacity: int = CAPACITY) -> None:
        self.path = path
        self._open_log = open_log
        self._log: QueryLog | None = None
        self._queue: deque[_Record] = deque()
        self._capacity = capacity
        self._known: OrderedDict[str, None] = OrderedDict()
        self._changed = threading.Condition()
        self._closing = False
        self._in_flight = 0  # records taken off the queue, being written
        self.written = 0
        self.failures = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="question-log-writer", daemon=True)
        self._thread.start()

    # -- what answers call: never blocks on the file ---------------------------------------------------------

    def record(self, **fields: object) -> None:
        """Queue one answered question (QueryLog.record's arguments, question_id included)."""
        with self._changed:
            self._known[str(fields["question_id"])] = None
            while len(self._known) > KNOWN_IDS:
                self._known.popitem(last=False)
        self._put(_Record("question", dict(fields)))

    def feedback(self, question_id: str, helpful: bool, comment: str | None) -> FeedbackVerdict:
        """Queue a verdict on an answer. "unknown": no such question; "log_down": kept, but the log cannot be
        written now (the caller says so)."""
        with self._changed:
            known = question_id in self._known
        if not known and question_exists(self.path, question_id, LOOKUP_TIMEOUT_S) is False:
            return "unknown"
        self._put(_Record("feedback", {"question_id": question_id, "helpful": helpful, "comment": comment}))
        return "queued" if self.ok else "log_down"

    @property
    def ok(self) -> bool:
        """Whether the last attempt to write succeeded (or nothing has failed yet)."""
        return self.last_error is None

    def health(self, details: bool = False) -> dict:
        """What /readyz shows: to anyone whether the log works; with `details` (the admin key) why not."""
        with self._changed:
            figures: dict[str, object] = {"ok": self.ok, "pending": len(self._queue) + self._in_flight}
            if details:
                figures |= {"written": self.written, "failed_writes": self.failures, "dropped": self.dropped,
                            "last_error": self.last_error, "path": shown(self.path)}
        return figures

    def _put(self, record: _Record) -> None:
        with self._changed:
            if self._closing:
                self.dropped += 1
                return
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(record)
            self._changed.notify_all()

    # -- staff tools and tests -------------------------------------------------------------------------------

    def reader(self) -> QueryLog:
        """The open log, for reading (staff review); QueryLogError while it cannot be opened."""
        current = self._log
        if current is None:
            raise QueryLogError(f"the question log {shown(self.path)} is not open ({self.last_error or 'opening'})")
        return current

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until the log is open and every queued record written (or the timeout passes); True if so."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._queue or self._in_flight or self._log is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (up to the timeout), then stop and close the file."""
        self.flush(timeout_s)
        with self._changed:
            self._closing = True
            self.dropped += len(self._queue)
            self._queue.clear()
            self._changed.notify_all()
        self._thread.join(timeout_s)
        if self._log is not None:
            self._log.close()

    # -- the writer thread -----------------------------------------------------------------------------------

    def _run(self) -> None:
        retry_s = FIRST_RETRY_S
        while True:
            with self._changed:  # the file is opened at start, and reopened after failing, with nothing queued too
                while not self._queue and not self._closing and self._log is not None:
                    self._changed.wait()
                if self._closing:
                    return
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                self._in_flight = len(batch)
            try:
                self._write(batch)
            except Exception as exc:  # noqa: BLE001 - whatever the failure, the records wait and the service goes on
                self._drop_if_broken()
                with self._changed:
                    self._queue.extendleft(reversed(batch))
                    while len(self._queue) > self._capacity:
                        self._queue.pop()
                        self.dropped += 1
                    self._in_flight = 0
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self._changed.notify_all()
                    log.error("question log write failed (%d waiting, retried in %.1f s): %s", len(self._queue),
                              retry_s, self.last_error)
                    self._changed.wait_for(lambda: self._closing, retry_s)
                retry_s = min(retry_s * 2, MAX_RETRY_S)
                continue
            retry_s = FIRST_RETRY_S
            with self._changed:
                self._in_flight = 0
                self.written += len(batch)
                self.last_error = None
                self._changed.notify_all()

    def _drop_if_broken(self) -> None:
        """Close a log whose connection is lost, so that the next attempt opens a new one."""
        broken = self._log
        if broken is not None and broken.broken:
            self._log = None
            broken.close()

    def _write(self, batch: list[_Record]) -> None:
        if self._log is None:
            self._log = self._open_log(self.path)
        if not batch:
            return
        with self._log.transaction():
            for record in batch:
                record.write(self._log)
