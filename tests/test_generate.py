"""Generative answers: what is sent to the chat endpoint, and every way its reply is refused or accepted.

The language model is a service outside the product, so a tiny OpenAI-compatible server stands in for it:
in-process, on 127.0.0.1 with a random port, replying however each test tells it to.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kb.answers.generate import GenerationFailed, build_messages, generate_answer
from kb.config import GeneratorConfig
from kb.schema import Hit, citation_for


def make_hit(n: int, title: str, article: str | None, text: str) -> Hit:
    return Hit(chunk_id=f"c{n}", doc_id=f"d{n}", doc_title=title, doc_kind="law", doc_date="2022-02-25",
               section="第四章 信访事项的办理", article=article, article_no=None, citation=citation_for(title, article),
               text=text, score=1.0 - n / 10, start=0, end=len(text))


HITS = [
    make_hit(1, "信访工作条例", "第三十五条", "第三十五条 信访事项应当自受理之日起60日内办结；情况复杂的，经批准可以适当延长办理期限，但延长期限不得超过30日。"),
    make_hit(2, "信访工作条例", "第三十四条", "第三十四条 对信访人提出的检举、揭发、控告类事项，应当依照有关规定办理。"),
]
QUESTION = "信访事项多长时间办结？"


@dataclass
class FakeLLM:
    """What the stand-in server replies (status, raw body, delay) and what it was sent."""

    url: str
    status: int = 200
    body: bytes = b""
    delay_s: float = 0.0
    requests: list[dict] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def reply(self, content: object) -> None:
        """Reply 200 with a chat completion whose message content is `content`."""
        self.body = json.dumps({"id": "x", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]},
            ensure_ascii=False).encode()

    def config(self, **changes: object) -> GeneratorConfig:
        return GeneratorConfig(**{"base_url": self.url, "model": "fake-qwen", "timeout_s": 5.0, **changes})


def _handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", "0"))
            fake.requests.append({"path": self.path, "headers": dict(self.headers),
                                  "json": json.loads(self.rfile.read(length))})
            if fake.delay_s and fake.stopping.wait(fake.delay_s):
                return  # the test is over and the client long gone
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(fake.body)))
            self.end_headers()
            self.wfile.write(fake.body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)  # 127.0.0.1 must be reached directly
    fake = FakeLLM(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.stopping.set()
        server.shutdown()
        server.server_close()  # joins the handler threads, which the event has woken
        thread.join(timeout=5)


# --- the request ---------------------------------------------------------------------------------------------


def test_messages_number_the_passages_with_their_citations_then_ask() -> None:
    system, user = build_messages(QUESTION, HITS)
    assert system["role"] == "system" and user["role"] == "user"
    for rule in ("[n]", "资料中没有相关规定", "只能依据"):
        assert rule in system["content"]
    content = user["content"]
    first = content.index("[1] 《信访工作条例》第三十五条")
    second = content.index("[2] 《信访工作条例》第三十四条")
    assert first < content.index(HITS[0].text) < second < content.index(HITS[1].text) < content.index(QUESTION)


def test_request_carries_model_passages_and_question_without_a_key(fake_llm: FakeLLM) -> None:
    fake_llm.reply("信访事项一般应在60日内办结[1]。")
    generate_answer(QUESTION, HITS, fake_llm.config(max_tokens=300))
    (request,) = fake_llm.requests
    assert request["path"] == "/v1/chat/completions"
    body = request["json"]
    assert body["model"] == "fake-qwen" and body["max_tokens"] == 300 and body["stream"] is False
    assert body["messages"] == build_messages(QUESTION, HITS)
    user = body["messages"][-1]["content"]
    assert all(hit.text in user for hit in HITS) and QUESTION in user
    assert "authorization" not in {name.lower() for name in request["headers"]}


def test_bearer_header_is_sent_when_a_key_is_set(fake_llm: FakeLLM) -> None:
    fake_llm.reply("60日内办结[1]。")
    generate_answer(QUESTION, HITS, fake_llm.config(api_key="sk-test", base_url=fake_llm.url + "/"))
    (request,) = fake_llm.requests
    assert request["path"] == "/v1/chat/completions", "a trailing slash in base_url is harmless"
    assert {k.lower(): v for k, v in request["headers"].items()}["authorization"] == "Bearer sk-test"


# --- accepted answers ----------------------------------------------------------------------------------------


def test_valid_answer_returns_text_and_citations_in_order_of_first_use(fake_llm: FakeLLM) -> None:
    content = "检举类事项依照有关规定办理[2]。一般事项60日内办结[1]，延长不超过30日[1][2]。"
    fake_llm.reply(f"  {content}\n")
    assert generate_answer(QUESTION, HITS, fake_llm.config()) == (content, [2, 1])


@pytest.mark.parametrize(
    ("content", "text", "cited"),
    [
        ("60日内办结［1］，可延长［２］。", "60日内办结[1]，可延长[2]。", [1, 2]),
        ("60日内办结[1,2]。", "60日内办结[1][2]。", [1, 2]),
        ("60日内办结[2，1]。", "60日内办结[2][1]。", [2, 1]),
        ("60日内办结[1、2]。", "60日内办结[1][2]。", [1, 2]),
        ("60日内办结［1、 2］。", "60日内办结[1][2]。", [1, 2]),
    ],
)
def test_marker_spellings_are_normalised(fake_llm: FakeLLM, content: str, text: str, cited: list[int]) -> None:
    fake_llm.reply(content)
    assert generate_answer(QUESTION, HITS, fake_llm.config()) == (text, cited)


# --- refused answers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["60日内办结[3]。", "60日内办结[1][0]。", "60日内办结[1,3]。", "办结［５］"])
def test_marker_outside_the_passages_is_refused(fake_llm: FakeLLM, content: str) -> None:
    fake_llm.reply(content)
    with pytest.raises(GenerationFailed, match="only 1..2"):
        generate_answer(QUESTION, HITS, fake_llm.config())


@pytest.mark.parametrize("content", ["信访事项应当在60日内办结。", "资料中没有相关规定。"])
def test_answer_without_any_marker_is_refused(fake_llm: FakeLLM, content: str) -> None:
    fake_llm.reply(content)
    with pytest.raises(GenerationFailed, match="cites no passage"):
        generate_answer(QUESTION, HITS, fake_llm.config())


@pytest.mark.parametrize("content", ["", "  \n", None])
def test_empty_content_is_refused(fake_llm: FakeLLM, content: object) -> None:
    fake_llm.reply(content)
    with pytest.raises(GenerationFailed, match="empty"):
        generate_answer(QUESTION, HITS, fake_llm.config())


def test_malformed_json_is_refused(fake_llm: FakeLLM) -> None:
    fake_llm.body = '{"choices": [{"message": {"content": "60日内[1]'.encode()
    with pytest.raises(GenerationFailed, match="JSON"):
        generate_answer(QUESTION, HITS, fake_llm.config())


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": [{"text": "60日内[1]"}]}, [1, 2], {"choices": "x"}])
def test_unexpected_reply_shape_is_refused(fake_llm: FakeLLM, body: object) -> None:
    fake_llm.body = json.dumps(body).encode()
    with pytest.raises(GenerationFailed, match="shape"):
        generate_answer(QUESTION, HITS, fake_llm.config())


def test_http_error_status_is_refused(fake_llm: FakeLLM) -> None:
    fake_llm.status, fake_llm.body = 500, b'{"error": "model not loaded"}'
    with pytest.raises(GenerationFailed, match="HTTP 500"):
        generate_answer(QUESTION, HITS, fake_llm.config())


def test_slow_endpoint_times_out(fake_llm: FakeLLM) -> None:
    fake_llm.reply("60日内办结[1]。")
    fake_llm.delay_s = 2.0
    with pytest.raises(GenerationFailed, match="within 0.5 s"):
        generate_answer(QUESTION, HITS, fake_llm.config(timeout_s=0.5))
    assert len(fake_llm.requests) == 1, "the request did arrive; only the reply was too late"


def test_unreachable_endpoint_is_refused() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = GeneratorConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=2.0)
    with pytest.raises(GenerationFailed, match="cannot reach"):
        generate_answer(QUESTION, HITS, config)


def test_no_passages_means_no_request(fake_llm: FakeLLM) -> None:
    with pytest.raises(GenerationFailed, match="no passages"):
        generate_answer(QUESTION, [], fake_llm.config())
    assert fake_llm.requests == []


# --- wired into KnowledgeBase.ask ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ask_uses_a_properly_cited_generated_answer_and_falls_back_otherwise(fake_llm: FakeLLM, corpus_kb) -> None:
    from kb.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(corpus_kb.store, corpus_kb.embedder, corpus_kb.params, corpus_kb.answer_params,
                       fake_llm.config())
    fake_llm.reply("信访事项一般要在60日内办完，复杂的可以延长，但最多再延长30日[1]。")
    generated = kb.ask("信访事项多长时间办结？")
    assert generated.mode == "generative" and generated.answer.endswith("[1]。")
    assert "人工智能" in generated.notice, "a model-written answer is labelled as such"
    assert [c.n for c in generated.citations] == [1]
    assert generated.citations[0].hit.citation == "《信访工作条例》第三十四条"
    sent = fake_llm.requests[-1]["json"]["messages"][1]["content"]
    assert "《信访工作条例》第三十四条" in sent and "信访事项多长时间办结" in sent

    fake_llm.reply("信访事项要很快办完。")  # cites nothing: not shown
    fallback = kb.ask("信访事项多长时间办结？")
    assert fallback.mode == "extractive" and "60日内办结" in fallback.answer
    assert fallback.notice.startswith("以上内容由系统从知识库原文中自动摘录")

    requests_before = len(fake_llm.requests)
    refused = kb.ask("红烧肉怎么做？")
    assert not refused.answerable and len(fake_llm.requests) == requests_before, "no answer, no model call"
