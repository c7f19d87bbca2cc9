"""Follow-up questions, read with the question before them: in the library, the JSON API (history or a
conversation_id that carries the conversation), the OpenAI-compatible endpoint and WeChat (per OpenID)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_api import assert_error, make_client
from test_service import WECHAT_TOKEN, wechat

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from kb.stores.base import Filters

pytestmark = pytest.mark.slow

FIRST = "信访事项多久办结？"
FOLLOW_UP = "那要是对处理意见不满意呢？"
ANSWERING = "《信访工作条例》第三十五条"  # 信访人对信访处理意见不服的，可以……请求……复查
NEW_TOPIC = "离婚后孩子归谁抚养？"


def first_citation(answer: dict) -> str | None:
    return answer["citations"][0]["citation"] if answer["citations"] else None


@pytest.fixture(scope="module")
def client(corpus_index: Path, corpus_kb: KnowledgeBase, settings: Settings,
           tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return make_client(settings, corpus_kb, tmp_path_factory.mktemp("followup"), corpus_index,
                       wechat_token=WECHAT_TOKEN)


def test_a_follow_up_is_read_with_the_question_before_it(corpus_kb: KnowledgeBase) -> None:
    alone = corpus_kb.ask(FOLLOW_UP)
    followed = corpus_kb.ask(FOLLOW_UP, history=["你好", FIRST])
    assert alone.follow_up_of is None and (not alone.citations or alone.citations[0].hit.citation != ANSWERING)
    assert followed.answerable and followed.citations[0].hit.citation == ANSWERING
    assert followed.follow_up_of == FIRST and followed.question == FOLLOW_UP


def test_a_follow_up_of_a_follow_up_leans_on_both_earlier_questions(corpus_kb: KnowledgeBase) -> None:
    reader = corpus_kb.conversation
    assert reader.understood([FIRST, FOLLOW_UP], 3, Filters()) == f"{FIRST} {FOLLOW_UP}"
    assert reader.understood([NEW_TOPIC, FIRST], 3, Filters()) == FIRST, "a new topic is understood on its own"
    third = corpus_kb.ask("要在多少天内提出？", history=[FIRST, FOLLOW_UP])
    assert third.follow_up_of == f"{FIRST} {FOLLOW_UP}" and third.citations[0].hit.citation == ANSWERING


def test_a_single_earlier_question_may_be_given_as_text(corpus_kb: KnowledgeBase) -> None:
    assert corpus_kb.ask(FOLLOW_UP, history=FIRST).follow_up_of == FIRST


def test_a_new_topic_starts_fresh(corpus_kb: KnowledgeBase) -> None:
    fresh = corpus_kb.ask(NEW_TOPIC)
    after = corpus_kb.ask(NEW_TOPIC, history=[FIRST])
    assert after.follow_up_of is None
    assert [c.hit.citation for c in after.citations] == [c.hit.citation for c in fresh.citations]
    assert "民法典" in after.citations[0].hit.citation


@pytest.mark.parametrize(("earlier", "question"), [
    (FIRST, "村委会选举怎么投票？"),
    (FIRST, "父母去世了，遗产怎么分？"),
    ("离婚冷静期多长？", "复议期限是多久？"),
    ("人民调解要收费吗？", "邻居家的树根长到我家院子里了怎么办？"),
])
def test_a_question_that_stands_alone_is_answered_exactly_as_if_asked_alone(corpus_kb: KnowledgeBase, earlier: str,
                                                                           question: str) -> None:
    """Same passages, same answer/no-answer decision, same words: the question before it changes nothing."""
    corpus_kb.ask(earlier)
    fresh, after = corpus_kb.ask(question), corpus_kb.ask(question, history=[earlier])
    assert after.follow_up_of is None
    assert (after.answerable, after.answer, after.confidence) == (fresh.answerable, fresh.answer, fresh.confidence)
    assert [c.hit.chunk_id for c in after.citations] == [c.hit.chunk_id for c in fresh.citations]
    assert [h.chunk_id for h in after.related_passages] == [h.chunk_id for h in fresh.related_passages]


@pytest.mark.parametrize("question", ["明天天气怎么样？", "红烧肉怎么做才好吃？", "附近哪家超市打折？"])
def test_a_question_the_knowledge_base_cannot_answer_is_not_answered_because_of_the_one_before(
        corpus_kb: KnowledgeBase, question: str) -> None:
    assert not corpus_kb.ask(question).answerable
    after = corpus_kb.ask(question, history=[FIRST])
    assert not after.answerable and after.follow_up_of is None and not after.citations


@pytest.mark.parametrize(("question", "article"), [("能延长吗？", "第三十四条"), ("超过期限了怎么办？", None)])
def test_an_elliptical_question_is_still_read_as_a_follow_up(corpus_kb: KnowledgeBase, question: str,
                                                            article: str | None) -> None:
    after = corpus_kb.ask(question, history=[FIRST])
    assert after.follow_up_of == FIRST and after.answerable
    assert "信访工作条例" in after.citations[0].hit.citation
    if article:
        assert after.citations[0].hit.article == article


def test_a_question_about_another_law_starts_a_new_topic(corpus_kb: KnowledgeBase) -> None:
    question = "申请行政复议的期限是多久？"  # names 行政复议 (法), not 人民调解法, which the earlier one was about
    after = corpus_kb.ask(question, history=["人民调解要收费吗？"])
    assert after.follow_up_of is None
    assert "行政复议法" in after.citations[0].hit.citation


def test_a_full_question_whose_own_best_passage_wins_starts_a_new_topic(corpus_kb: KnowledgeBase) -> None:
    earlier, question = "借钱不还多久之内可以去法院起诉？", "网购的商品有质量问题，商家拒绝退货怎么办？"
    after = corpus_kb.ask(question, history=[earlier])
    assert after.follow_up_of is None and "消费者权益保护法" in after.citations[0].hit.citation
    # The case this test is about: it names no law, so the follow-up ranker weighed it against 民法典's readings.
    _, found = corpus_kb.conversation.candidates(question, [earlier], 3, Filters())
    assert found is not None and any("民法典" in h.doc_title for h in found.hits)


def test_api_reads_history(client: TestClient) -> None:
    body = client.post("/api/ask", json={"question": FOLLOW_UP, "history": [FIRST]}).json()
    assert first_citation(body) == ANSWERING and body["follow_up_of"] == FIRST


def test_api_keeps_a_conversation_by_its_id(client: TestClient) -> None:
    first = client.post("/api/ask", json={"question": FIRST}).json()
    conversation = first["conversation_id"]
    second = client.post("/api/ask", json={"question": FOLLOW_UP, "conversation_id": conversation}).json()
    assert first_citation(second) == ANSWERING and second["follow_up_of"] == FIRST
    chosen = client.post("/api/ask", json={"question": FOLLOW_UP, "conversation_id": "someone-else"}).json()
    assert chosen["follow_up_of"] is None, "another conversation's questions are never used"
    assert chosen["conversation_id"] != "someone-else", "ids are issued by the server, never chosen by a client"
    elsewhere = TestClient(client.app, client=("203.0.113.7", 40000))
    stolen = elsewhere.post("/api/ask", json={"question": FOLLOW_UP, "conversation_id": conversation}).json()
    assert stolen["follow_up_of"] is None and FIRST not in json.dumps(stolen, ensure_ascii=False)
    assert stolen["conversation_id"] != conversation, "a conversation belongs to the client it was issued to"
    kept = client.app.state.service.tokens.read(second["conversation_id"], "testclient")
    assert kept == (FIRST, FOLLOW_UP), "each answer returns the conversation_id of the conversation so far"


def test_a_follow_up_reaching_another_replica_is_read_with_its_conversation(
        corpus_index: Path, corpus_kb: KnowledgeBase, settings: Settings, tmp_path: Path) -> None:
    """The conversation_id carries the conversation: any replica with the same secret reads it."""
    replica_a, replica_b = (make_client(settings, corpus_kb, tmp_path / name, corpus_index,
                                        conversation_secret="the-deployment's-secret") for name in "ab")
    first = replica_a.post("/api/ask", json={"question": FIRST}).json()
    second = replica_b.post("/api/ask", json={"question": FOLLOW_UP,
                                              "conversation_id": first["conversation_id"]}).json()
    assert first_citation(second) == ANSWERING and second["follow_up_of"] == FIRST


@pytest.mark.parametrize("history, code", [
    ("信访事项多久办结？", "invalid_request"),
    ([1, 2], "invalid_request"),
    (["问"] * 11, "invalid_request"),
    (["长" * 501], "question_too_long"),
])
def test_api_refuses_a_malformed_history(client: TestClient, history: object, code: str) -> None:
    response = client.post("/api/ask", json={"question": FOLLOW_UP, "history": history})
    assert_error(response, 422 if code == "invalid_request" else 400, code)


def test_api_refuses_a_malformed_conversation_id(client: TestClient) -> None:
    assert_error(client.post("/api/ask", json={"question": FOLLOW_UP, "conversation_id": "a b<c>"}), 422,
                 "invalid_request")


def test_openai_chat_reads_the_earlier_user_messages(client: TestClient) -> None:
    messages = [{"role": "user", "content": FIRST}, {"role": "assistant", "content": "……"},
                {"role": "user", "content": FOLLOW_UP}]
    content = client.post("/v1/chat/completions", json={"messages": messages}).json()["choices"][0]["message"]["content"]
    assert ANSWERING in content and f"接着您上一个问题「{FIRST}」回答" in content


def test_wechat_keeps_each_users_conversation_apart(client: TestClient) -> None:
    wechat(client, FIRST, user="openid-a")
    followed = wechat(client, FOLLOW_UP, user="openid-a")
    assert ANSWERING in followed and "接着您上一个问题" in followed
    other = wechat(client, FOLLOW_UP, user="openid-b")
    assert "接着您上一个问题" not in other, "one user's questions never shape another's answers"
