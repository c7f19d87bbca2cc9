"""Two `kb serve` processes on one milvus-lite server and one PostgreSQL (issue 26): a deployment's replicas behind
a proxy, each request free to land on either. Feedback, follow-ups and WeChat conversations work whichever replica
answers; both log into the one database. Real processes, real model, real servers, all on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import make_small_corpus
from test_milvus import in_milvus
from test_replicas import FIRST, FOLLOW_UP, raw_rows
from test_service import WECHAT_TOKEN, wechat

from bench.services import kb_serve
from ingest.build import ingest
from kb.config import Settings
from kb.embedding.embedder import Embedder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, settings: Settings, embedder: Embedder, milvus_uri: str,
             postgresql_server: str) -> Iterator[tuple[httpx.Client, httpx.Client, str]]:
    """Replicas A and B of one township's knowledge base, as compose runs them: the same store, log and secret."""
    import psycopg

    root = tmp_path_factory.mktemp("replicas")
    ingest([make_small_corpus(root)], in_milvus(settings, milvus_uri, "twins"), embedder=embedder)
    log_url = postgresql_server.rsplit("/", 1)[0] + "/twins"
    with psycopg.connect(postgresql_server, autocommit=True) as admin:
        admin.execute("CREATE DATABASE twins")
    env = {"KB_STORE": "milvus", "KB_MILVUS_URI": milvus_uri, "KB_NAME": "twins", "KB_QUERY_LOG": log_url,
           "KB_CONVERSATION_SECRET": "the deployment's secret", "KB_WECHAT_TOKEN": WECHAT_TOKEN,
           "KB_CACHE_DIR": str(settings.cache_dir), "KB_RATE_PER_MINUTE": "100000", "KB_RATE_BURST": "100000"}
    with kb_serve(env, log=root / "a.log") as a, kb_serve(env, log=root / "b.log") as b, \
            httpx.Client(base_url=a.base, timeout=120) as on_a, httpx.Client(base_url=b.base, timeout=120) as on_b:
        yield on_a, on_b, log_url


def ask(client: httpx.Client, question: str, **extra: object) -> dict:
    response = client.post("/api/ask", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def cited(answer: dict) -> list[str]:
    return [c["chunk_id"] for c in answer["citations"]]


def written(client: httpx.Client) -> None:
    """Wait until the replica's log writer has written what it queued (answers never wait for it; a person's
    next tap comes seconds later)."""
    deadline = time.monotonic() + 60
    while client.get("/readyz").json()["query_log"] != {"ok": True, "pending": 0}:
        assert time.monotonic() < deadline, "the question log writer did not catch up"
        time.sleep(0.1)


def test_a_follow_up_and_feedback_work_on_the_other_replica(replicas: tuple[httpx.Client, httpx.Client, str]) -> None:
    on_a, on_b, log_url = replicas
    first = ask(on_a, FIRST)
    assert first["answerable"]
    written(on_a)
    feedback = on_b.post("/api/feedback", json={"question_id": first["question_id"], "helpful": False})
    assert feedback.status_code == 200, feedback.text

    on_b_with_a_conversation = ask(on_b, FOLLOW_UP, conversation_id=first["conversation_id"])
    with_history_on_a = ask(on_a, FOLLOW_UP, history=[FIRST])
    alone = ask(on_a, FOLLOW_UP)
    assert on_b_with_a_conversation["follow_up_of"] == FIRST
    assert cited(on_b_with_a_conversation) == cited(with_history_on_a)
    assert (cited(alone), alone.get("follow_up_of")) != (cited(with_history_on_a), FIRST)  # the conversation matters

    written(on_a)
    written(on_b)
    asked = {row[0] for row in raw_rows(log_url, "SELECT question_id FROM questions")}
    assert {first["question_id"], on_b_with_a_conversation["question_id"]} <= asked  # both replicas log there
    helpful = raw_rows(log_url, "SELECT question_id, helpful FROM feedback")
    assert (first["question_id"], False) in helpful


def test_a_wechat_users_conversation_continues_on_the_other_replica(
        replicas: tuple[httpx.Client, httpx.Client, str]) -> None:
    on_a, on_b, _ = replicas
    assert "十元" in wechat(on_a, FIRST, user="villager-twins")  # type: ignore[arg-type]
    followed = wechat(on_b, FOLLOW_UP, user="villager-twins")  # type: ignore[arg-type]
    assert f"接着您上一个问题「{FIRST}」回答" in followed
    stranger = wechat(on_b, FOLLOW_UP, user="someone-else")  # type: ignore[arg-type]
    assert "接着您上一个问题" not in stranger
