"""The per-client token bucket, with time controlled by the test; and the service charging it before any work."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import pytest
from fastapi.testclient import TestClient

from kb.config import Settings
from kb.search.conversation import retrievals_for
from server.app import create_app
from server.errors import ApiError
from server.ratelimit import RateLimiter
from server.service import ServiceState
from server.settings import ServerSettings

if TYPE_CHECKING:
    from kb.knowledge_base import KnowledgeBase
    from server.logwriter import LogWriter


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


# --- the limiter on the service's ways in, without a model ---------------------------------------------------------
# ServiceState holds a knowledge base but builds none: a stand-in that counts its retrievals shows that a request
# over its client's rate is refused before any retrieval runs, on the question path (ServiceState.ask and the HTTP
# channels that call admit + answer) and on the search path (and every other rate-limited GET).

QUESTION = "集市摊位费每天多少钱"
BURST = 3


class CountingKnowledgeBase:
    """What ServiceState and the API's routes ask of a knowledge base, recording each retrieval."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.searched: list[str] = []
        self.documents: dict[str, object] = {}

    def ask(self, question: str, **_: object) -> SimpleNamespace:
        self.asked.append(question)
        shown = {"answer": f"答：{question}", "answerable": True, "confidence": 1.0, "citations": []}
        return SimpleNamespace(**shown, took_ms=1, to_dict=lambda: dict(shown))

    def search(self, question: str, top_k: int = 5, **_: object) -> list:
        self.searched.append(question)
        return []


class NoLog:
    """The question log, not written."""

    def record(self, **_: object) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def kb() -> CountingKnowledgeBase:
    return CountingKnowledgeBase()


@pytest.fixture
def service(kb: CountingKnowledgeBase) -> Iterator[ServiceState]:
    config = replace(ServerSettings(), rate_per_minute=1.0, rate_burst=BURST, trusted_proxies=(), cors_origins=(),
                     admin_key="", wechat_token="")
    state = ServiceState(Settings(), config, cast("KnowledgeBase", kb), cast("LogWriter", NoLog()))
    yield state
    state.close()


def test_a_question_over_the_clients_rate_is_refused_before_any_retrieval(service: ServiceState,
                                                                          kb: CountingKnowledgeBase) -> None:
    for _ in range(BURST):
        assert service.ask(QUESTION, "cli", "flooder")["answer"] == f"答：{QUESTION}"
    with pytest.raises(ApiError) as refused:
        service.ask(QUESTION, "cli", "flooder")
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert int((refused.value.headers or {})["Retry-After"]) >= 1
    assert kb.asked == [QUESTION] * BURST, "the refused question was never retrieved for"
    assert service.ask(QUESTION, "cli", "neighbour")["answer"], "one client's flood does not silence another"


def test_a_question_read_with_its_history_is_charged_what_the_reading_costs(service: ServiceState,
                                                                           kb: CountingKnowledgeBase) -> None:
    costly = retrievals_for(["信访事项多久办结？"])
    assert costly > BURST, "more than a bucket: charged a full one (RateLimiter.check)"
    service.ask(QUESTION, "cli", "reader", history=["信访事项多久办结？"])
    with pytest.raises(ApiError):
        service.ask(QUESTION, "cli", "reader")
    assert len(kb.asked) == 1


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/ask", {"question": QUESTION}),
    ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": QUESTION}]}),
])
def test_every_http_question_channel_is_rate_limited_before_any_retrieval(
        service: ServiceState, kb: CountingKnowledgeBase, method: str, path: str, body: dict) -> None:
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        responses = [client.request(method, path, json=body) for _ in range(BURST + 1)]
    assert [r.status_code for r in responses] == [200] * BURST + [429]
    assert responses[-1].json()["error"]["code"] == "rate_limited" and responses[-1].headers["Retry-After"]
    assert kb.asked == [QUESTION] * BURST


def test_a_search_over_the_clients_rate_is_refused_before_any_retrieval(service: ServiceState,
                                                                        kb: CountingKnowledgeBase) -> None:
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        responses = [client.get("/api/search", params={"q": QUESTION}) for _ in range(BURST + 1)]
        assert client.get("/healthz").status_code == 200, "health checks are never limited"
    assert [r.status_code for r in responses] == [200] * BURST + [429]
    assert responses[-1].json()["error"]["code"] == "rate_limited" and responses[-1].headers["Retry-After"]
    assert kb.searched == [QUESTION] * BURST, "the refused search was never run"


def test_the_other_public_reads_share_the_clients_rate(service: ServiceState) -> None:
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        client.get("/api/search", params={"q": QUESTION})
        statuses = [client.get("/api/documents").status_code for _ in range(BURST)]
    assert statuses == [200] * (BURST - 1) + [429], "one bucket per client, whatever it asks for"
