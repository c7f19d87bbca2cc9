"""Questions attached to passages (关联问题): the sidecar format and its errors, ingest with and without sidecars,
handles found end to end, `kb questions`, drafting with a chat model, and the staff endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.question_bank import copied_runs
from cli.main import main as kb_main
from ingest.build import ingest
from ingest.draft_questions import draft_path, parse_reply
from ingest.questions import AttachedQuestion, attach, read_sidecar, sidecar_path
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.knowledge_base import KnowledgeBase
from kb.schema import Chunk
from kb.stores.handles import HandleMatch
from tests.conftest import CORPUS_DIR, make_small_corpus

ADMIN_KEY = "questions-admin-key"
ROAD = "乡村道路养护条例"


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def chunk(article_no: int | None, text: str, chunk_id: str = "c") -> Chunk:
    return Chunk(chunk_id, "doc", 0, "", f"第{article_no}条" if article_no else None, article_no, 0, 0, len(text), text)


# --- the sidecar format -------------------------------------------------------------------------------------------


def test_a_sidecar_is_read_line_by_line_and_each_bad_line_is_named(tmp_path: Path) -> None:
    sidecar = write_lines(
        tmp_path / "某法.questions.jsonl",
        '{"q": "下大雪了路上全是雪，镇上多久来清？", "articles": [4], "form": "story"}',
        "",
        '{"q": "报告里说新建了几个垃圾点", "contains": "垃圾收集点"}',
        '{"q": "坏的',
        '{"q": "", "articles": [1]}',
        '{"q": "没有出处"}',
        '{"q": "两个都给了", "articles": [1], "contains": "x"}',
        '{"q": "编号不对", "articles": ["四"]}',
        '{"q": "形式不对", "articles": [1], "form": "poem"}',
        '["not", "an", "object"]',
    )
    questions, errors = read_sidecar(sidecar)
    assert [(q.question, q.articles, q.contains, q.line) for q in questions] == [
        ("下大雪了路上全是雪，镇上多久来清？", (4,), "", 1), ("报告里说新建了几个垃圾点", (), "垃圾收集点", 3)]
    assert questions[0].form == "story"
    assert [str(e).split(":")[0] for e in errors] == [f"某法.questions.jsonl line {n}" for n in (4, 5, 6, 7, 8, 9, 10)]
    assert "JSON" in str(errors[0]) and "articles" in str(errors[4]) and "form" in str(errors[5])


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage\x00", "{\"q\": \"问题\", \"articles\": [1]}".encode("gbk")])
def test_a_sidecar_that_is_not_utf8_is_one_clear_error(tmp_path: Path, raw: bytes) -> None:
    sidecar = tmp_path / "某法.questions.jsonl"
    sidecar.write_bytes(raw)
    questions, errors = read_sidecar(sidecar)
    assert questions == [] and len(errors) == 1 and "UTF-8" in str(errors[0])


def test_questions_attach_to_their_article_or_snippet_and_others_are_errors() -> None:
    chunks = [chunk(1, "第一条 总则。", "a"), chunk(2, "第二条 前半。", "b1"), chunk(2, "后半。", "b2"),
              chunk(None, "一是新建垃圾收集点十二个。", "r")]
    questions = [AttachedQuestion("两部分的条", (2,), line=1), AttachedQuestion("报告", contains="垃圾收集点", line=2),
                 AttachedQuestion("没有这条", (9,), line=3), AttachedQuestion("没有这句", contains="不存在", line=4)]
    attached, errors = attach(questions, chunks, "某法.md")
    assert [(q.line, [c.chunk_id for c in found]) for q, found in attached] == [(1, ["b1", "b2"]), (2, ["r"])]
    assert [str(e) for e in errors] == ["某法.questions.jsonl line 3: 某法.md has no article 9",
                                        '某法.questions.jsonl line 4: no passage of 某法.md contains "不存在"']


def test_the_bank_checker_flags_copied_wording_but_not_names() -> None:
    article = "第三条村民委员会负责本村道路的日常巡查发现路面塌陷应当在二十四小时内设置警示标志"
    assert copied_runs("路面塌陷应当在多久内设置警示标志？", article) == ["路面塌陷应当在", "内设置警示标志"]
    assert copied_runs("村口的路塌了个大坑，找村民委员会有用吗？", article) == []


def test_a_passage_without_handles_is_marked_so_and_not_read_as_a_far_one() -> None:
    """The handle stage learns what having no handles says (kb/search/handle_stage.py): such a passage gets the
    lowest cosine any handle got and a 0 in its own column, apart from a passage whose handles are merely far."""
    match = HandleMatch(cosine={("doc", 3): 0.91, ("doc", 4): 0.42}, bm25={("doc", 3): 7.5}, pooled=[("doc", 3)],
                        law_share={"doc": 1.0})
    cosine, bm25, law_share, has_handles = match.features([chunk(3, "甲", "a"), chunk(4, "乙", "b"),
                                                           chunk(5, "丙", "c")])
    assert cosine.tolist() == [0.91, 0.42, 0.42]
    assert bm25.tolist() == [7.5, 0.0, 0.0]
    assert law_share.tolist() == [1.0, 1.0, 1.0]
    assert has_handles.tolist() == [1.0, 1.0, 0.0]


def test_a_drafted_reply_becomes_clean_questions() -> None:
    reply = "1. 我家门口的路塌了，该找谁？\n2、下雪路滑没人管怎么办\n\n- “我想问问道路归谁修”\n（4）第四个会被截掉"
    assert parse_reply(reply) == ["我家门口的路塌了，该找谁？", "下雪路滑没人管怎么办", "我想问问道路归谁修"]


# --- ingest and search with attached questions (the real model) ---------------------------------------------------


@pytest.fixture
def road_corpus(tmp_path: Path) -> Path:
    corpus = make_small_corpus(tmp_path)
    write_lines(sidecar_path(corpus / f"{ROAD}.md"),
                '{"q": "昨晚下了一尺厚的雪，村里大路堵死了，乡里几天内要派人来铲？", "articles": [4], "form": "story"}',
                '{"q": "我们村那条通组路上天天有人晒苞谷，能管吗", "articles": [5]}',
                '{"q": "坏行"}',
                '{"q": "没有的条", "articles": [40]}')
    return corpus


@pytest.mark.slow
def test_ingest_indexes_attached_questions_reports_bad_lines_and_keeps_the_rest(
        road_corpus: Path, tmp_path: Path, settings: Settings, embedder: Embedder) -> None:
    local = settings.with_(index_dir=tmp_path / "index")
    report = ingest([road_corpus], local, embedder=embedder)
    assert (report.documents, report.questions) == (3, 2)
    assert [e.split(":")[0] for e in report.question_errors] == [f"{ROAD}.questions.jsonl line {n}" for n in (3, 4)]
    kb = KnowledgeBase.open(settings=local, embedder=embedder)
    info = kb.info()
    assert info["questions"] == 2
    assert {d["title"]: d["questions"] for d in info["documents"]} == {ROAD: 2, "集市摊位管理办法": 0, "某镇2023年工作报告": 0}
    road = next(d for d in kb.documents.values() if d.title == ROAD)
    assert [(q["citation"], q["form"]) for q in kb.attached_questions(road.doc_id)] == [
        (f"《{ROAD}》第四条", "story"), (f"《{ROAD}》第五条", "")]

    hits = kb.search("昨晚下了一尺厚的雪，村里大路堵死了，乡里几天内要派人来铲？", top_k=1)
    assert hits[0].citation == f"《{ROAD}》第四条"
    # A document without a sidecar is neither favoured nor pushed down by the others' handles.
    assert kb.search("集市上摆一个摊一天最多收多少钱", top_k=1)[0].citation == "《集市摊位管理办法》第三条"

    sidecar_path(road_corpus / f"{ROAD}.md").unlink()
    plain = settings.with_(index_dir=tmp_path / "plain")
    assert ingest([road_corpus], plain, embedder=embedder).questions == 0
    without = KnowledgeBase.open(settings=plain, embedder=embedder)
    assert without.store.handles is None and without.info()["questions"] == 0
    assert without.search("下雪后多久清除积雪", top_k=1)[0].citation == f"《{ROAD}》第四条"


@pytest.mark.slow
def test_attached_questions_bring_the_right_article_first_more_often(corpus_kb: KnowledgeBase) -> None:
    """Searched as written, the bank's own questions find their article first more often with the handle stage
    than without it (the shipped weights: kb/search/rankers/handles-*.json)."""
    if corpus_kb.store.handles is None or corpus_kb.retriever.handle_ranker is None:
        pytest.fail("corpus/ has sidecars and a handle stage is shipped for the default model")
    sample = [h for h in corpus_kb.store.handles.handles if isinstance(h.target, int)][::97][:40]
    plain = corpus_kb.with_params(replace(corpus_kb.params))
    plain.retriever.handle_ranker = None

    def first_right(kb: KnowledgeBase) -> int:
        firsts = [(kb.search(h.question, top_k=1)[0], h) for h in sample]
        return sum((hit.doc_id, hit.article_no) == (h.doc_id, h.target) for hit, h in firsts)

    assert first_right(corpus_kb) > first_right(plain)


# --- the command line ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kb_questions_lists_a_documents_attached_questions(
        road_corpus: Path, tmp_path: Path, settings: Settings, embedder: Embedder,
        capsys: pytest.CaptureFixture[str]) -> None:
    ingest([road_corpus], settings.with_(index_dir=tmp_path / "index"), embedder=embedder)
    assert kb_main(["questions", ROAD, "--index", str(tmp_path / "index"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["article_no"], r["citation"]) for r in rows] == [(4, f"《{ROAD}》第四条"), (5, f"《{ROAD}》第五条")]
    assert kb_main(["questions", "没有这个文档", "--index", str(tmp_path / "index")]) == 1
    assert "没有这个文档" in capsys.readouterr().err


class _FakeChatModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint (a service outside the product): three questions per request."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        n = len(type(self).requests)
        content = f"1. 第{n}段的第一个问题？\n2. 第{n}段的第二个问题？\n3. 第{n}段的第三个问题？"
        reply = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chat_model() -> Iterator[str]:
    _FakeChatModel.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeChatModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


def test_kb_questions_draft_writes_candidates_for_review(small_corpus: Path, chat_model: str,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    document = small_corpus / f"{ROAD}.md"
    monkeypatch.delenv("KB_LLM_BASE_URL", raising=False)
    assert kb_main(["questions", "draft", str(document)]) == 1
    assert "KB_LLM_BASE_URL" in capsys.readouterr().err
    monkeypatch.setenv("KB_LLM_BASE_URL", chat_model)
    monkeypatch.setenv("KB_LLM_MODEL", "any-chat-model")
    assert kb_main(["questions", "draft", str(document)]) == 0
    rows = [json.loads(line) for line in draft_path(document).read_text(encoding="utf-8").splitlines()]
    assert len(_FakeChatModel.requests) == 5 and len(rows) == 15  # five articles, three questions each
    assert [r["articles"] for r in rows[::3]] == [[1], [2], [3], [4], [5]]
    assert "第三条 村民委员会负责本村道路" in _FakeChatModel.requests[2]["messages"][-1]["content"]
    assert not sidecar_path(document).exists(), "a draft is for review: ingest never reads it"
    questions, errors = read_sidecar(draft_path(document))
    assert len(questions) == 15 and errors == []


# --- the staff endpoint -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_staff_add_a_question_and_it_is_indexed(small_corpus: Path, tmp_path: Path, settings: Settings,
                                                embedder: Embedder) -> None:
    from tests.test_api import _wait_for, assert_error, make_client

    local = replace(settings, corpus_dir=small_corpus, index_dir=tmp_path / "index")
    ingest([small_corpus], local, embedder=embedder)
    kb = KnowledgeBase.open(settings=local, embedder=embedder)
    client = make_client(local, kb, tmp_path, admin_key=ADMIN_KEY)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    road = next(d.doc_id for d in kb.documents.values() if d.title == ROAD)
    url = f"/api/admin/documents/{road}/questions"
    question = {"q": "路上塌了个大坑，村里得多快立个牌子？", "articles": [3]}

    assert_error(client.post(url, json=question), 401, "unauthorized")
    assert_error(client.post(url, content=b"{not json", headers=auth), 400, "bad_json")
    assert_error(client.post(url, json={"articles": [3]}, headers=auth), 400, "bad_question")
    assert_error(client.post(url, json={"q": "没有这条", "articles": [99]}, headers=auth), 400, "no_such_passage")
    assert_error(client.post("/api/admin/documents/nope/questions", json=question, headers=auth), 404, "not_found")
    assert not sidecar_path(small_corpus / f"{ROAD}.md").exists(), "a refused question never reaches the corpus"

    job = client.post(url, json=question, headers=auth)
    assert job.status_code == 202, job.text
    assert _wait_for(client, job.json(), auth)["status"] == "done"
    assert read_sidecar(sidecar_path(small_corpus / f"{ROAD}.md"))[0][0].question == question["q"]
    listed = client.get(url, headers=auth).json()["questions"]
    assert [(q["q"], q["citation"]) for q in listed] == [(question["q"], f"《{ROAD}》第三条")]
    assert client.get("/readyz").json()["documents"] == 3


# --- the default corpus's bank ------------------------------------------------------------------------------------


def test_every_sidecar_of_the_default_corpus_is_clean() -> None:
    """The committed bank: every line parses and attaches to a passage of its document."""
    from bench.question_bank import corpus_chunks

    sidecars = sorted(CORPUS_DIR.glob("*.questions.jsonl"))
    assert sidecars, "corpus/ ships its question bank"
    corpus = corpus_chunks()
    for sidecar in sidecars:
        questions, errors = read_sidecar(sidecar)
        name, chunks = corpus[sidecar.name.removesuffix(".questions.jsonl")]
        attached, unattached = attach(questions, chunks, name)
        assert errors == [] and unattached == [] and len(attached) == len(questions) > 0, sidecar.name
