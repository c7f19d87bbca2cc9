"""Per-client rate limiting for the public endpoints, so one caller cannot use up a small server's CPU.

A token bucket per client: `burst` requests at once, then `rate_per_minute` on average. Memory stays bounded:
a client idle long enough for its bucket to be full again is forgotten (it would start with a full bucket anyway),
and beyond `max_clients` the longest-idle client is forgotten early, which at worst grants it a fresh burst.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Slack for float rounding, so a wait of 1.0000000001 s is announced as 1 s, not 2.
_EPSILON = 1e-9


class RateLimiter:
    """Thread-safe; `clock` (seconds, monotonic) is a parameter so tests can control time."""

    def __init__(self, rate_per_minute: float, burst: int, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_minute <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate_per_minute must be > 0, burst and max_clients >= 1")
        self._per_second = rate_per_minute / 60
        self._burst = burst
        self._max_clients = max_clients
        self._clock = clock
        #: client -> (tokens, time of last request); least recently seen first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many clients are remembered."""
        return len(self._buckets)

    def check(self, client: str, cost: float = 1) -> int | None:
        """Take `cost` requests' worth from `client`'s bucket (a question read with its history costs what its
        retrievals cost, never more than a full bucket): None if allowed, else whole seconds to wait."""
        cost = min(cost, self._burst)
        with self._lock:
            now = self._clock()
            self._forget_idle(now)
            tokens, last = self._buckets.pop(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._per_second)
            allowed = tokens >= cost
            self._buckets[client] = (tokens - cost if allowed else tokens, now)
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        return None if allowed else max(1, math.ceil((cost - tokens) / self._per_second - _EPSILON))

    def _forget_idle(self, now: float) -> None:
        """Drop clients whose buckets have refilled completely; they are oldest first, so stop at the first other."""
        refill_seconds = self._burst / self._per_second
        while self._buckets:
            _, last = next(iter(self._buckets.values()))
            if now - last < refill_seconds:
                break
            self._buckets.popitem(last=False)
