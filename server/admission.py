"""How many questions are worked on at once, and how many may wait: beyond that, a fast 503 with Retry-After.

On a 2-core machine two answers at a time use the CPU fully; more only share it, so every answer gets slower
and requests pile up in the thread pool, worked on long after their clients gave up. Here `workers` questions
run at once, `waiting` more wait at most `wait_s` for a turn, and a request whose client has gone away by its
turn is dropped before any work is done. Threading primitives only, so one instance serves any event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from server.errors import ApiError, ClientGone

T = TypeVar("T")

BUSY_MESSAGE = "系统繁忙，请稍后再试"


class Admission:
    """Thread-safe; `run` is called in a worker thread (the work it guards runs in that thread)."""

    def __init__(self, workers: int, waiting: int, wait_s: float) -> None:
        if workers < 1 or waiting < 0 or wait_s <= 0:
            raise ValueError("workers must be >= 1, waiting >= 0 and wait_s > 0")
        self.wait_s = wait_s
        self._running = threading.BoundedSemaphore(workers)
        self._admitted = threading.BoundedSemaphore(workers + waiting)

    def run(self, work: Callable[[], T], gone: Callable[[], bool] = lambda: False) -> T:
        """`work()` once a worker is free; ApiError 503 when too many wait or the wait is too long; ClientGone
        when `gone()` says the client left meanwhile."""
        if not self._admitted.acquire(blocking=False):
            raise self.busy()
        try:
            if not self._running.acquire(timeout=self.wait_s):
                raise self.busy()
            try:
                if gone():
                    raise ClientGone
                return work()
            finally:
                self._running.release()
        finally:
            self._admitted.release()

    def busy(self) -> ApiError:
        return ApiError(503, "busy", BUSY_MESSAGE, {"Retry-After": str(max(1, round(self.wait_s)))})
