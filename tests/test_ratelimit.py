"""The per-client token bucket, with time controlled by the test."""

from __future__ import annotations

import sys
import threading

import pytest

from server.ratelimit import RateLimiter


class Clock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_burst_is_allowed_then_limited_with_a_sensible_retry_after(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_minute=6, burst=3, clock=clock)  # one request per 10 s after the burst
    assert [limiter.check("1.2.3.4") for _ in range(3)] == [None, None, None]
    assert limiter.check("1.2.3.4") == 10
    clock.advance(4)
    assert limiter.check("1.2.3.4") == 6  # refused requests use up nothing: the wait just shrinks


def test_retry_after_is_rounded_up_and_at_least_one_second(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_minute=600, burst=1, clock=clock)  # a token every 0.1 s
    assert limiter.check("a") is None
    assert limiter.check("a") == 1
    limiter = RateLimiter(rate_per_minute=40, burst=1, clock=clock)  # a token every 1.5 s
    assert limiter.check("b") is None
    assert limiter.check("b") == 2


def test_the_bucket_refills_over_time_but_never_beyond_the_burst(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=2, clock=clock)
    assert limiter.check("c") is None and limiter.check("c") is None
    assert limiter.check("c") == 1
    clock.advance(1)
    assert limiter.check("c") is None
    assert limiter.check("c") == 1
    clock.advance(3600)
    assert [limiter.check("c") for _ in range(3)] == [None, None, 1]


def test_clients_are_limited_independently(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=1, clock=clock)
    assert limiter.check("10.0.0.1") is None
    assert limiter.check("10.0.0.1") == 60
    assert limiter.check("10.0.0.2") is None
    assert limiter.check("10.0.0.1") == 60


def test_idle_clients_are_forgotten(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=5, clock=clock)  # a bucket is full again after 5 s
    for n in range(100):
        limiter.check(f"client-{n}")
    assert len(limiter) == 100
    clock.advance(5)
    limiter.check("newcomer")
    assert len(limiter) == 1


def test_memory_is_bounded_when_many_clients_are_active(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=1, max_clients=50, clock=clock)
    for n in range(10_000):
        limiter.check(f"client-{n}")
        assert len(limiter) <= 50
    assert len(limiter) == 50
    assert limiter.check("client-9999") == 60  # the most recent clients are the ones remembered


def test_concurrent_checks_never_allow_more_than_the_burst(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=20, clock=clock)
    start = threading.Barrier(8)
    allowed: list[bool] = []

    def work() -> None:
        start.wait()
        for _ in range(250):
            allowed.append(limiter.check("shared") is None)

    workers = [threading.Thread(target=work) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so an unguarded bucket would be raced
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(allowed) == 2000 and sum(allowed) == 20


@pytest.mark.parametrize(("rate", "burst", "max_clients"), [(0, 1, 1), (-5, 1, 1), (60, 0, 1), (60, 1, 0)])
def test_nonsensical_settings_are_refused(rate: float, burst: int, max_clients: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate_per_minute=rate, burst=burst, max_clients=max_clients)


def test_the_real_clock_is_used_by_default() -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=1)
    assert limiter.check("d") is None
    assert 50 <= limiter.check("d") <= 60


def test_a_costly_request_takes_what_it_costs_and_never_more_than_a_full_bucket(clock: Clock) -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=20, clock=clock)
    assert limiter.check("reader", cost=12) is None
    assert limiter.check("reader", cost=12) == 4, "8 left: 4 more seconds at one a second"
    assert limiter.check("reader") is None, "a plain question still fits"
    clock.advance(60)
    assert limiter.check("reader", cost=1000) is None, "capped at the bucket: a full one always pays"
    assert limiter.check("reader") == 1
