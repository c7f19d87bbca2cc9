"""The Milvus store (KB_STORE=milvus), over milvus-lite's own server in another process: the same hits and answers
as the local index (the questions attached to passages included), filters, article lookup and documents, knowledge
bases kept apart, documents and their attached questions added, changed and removed, an ingest killed midway, and
two `kb serve` processes sharing one knowledge base."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import CORPUS_DIR, DEV_SET, ROAD_LAW, free_port, make_small_corpus
from test_api import assert_error, make_client

from ingest.build import ingest
from ingest.questions import sidecar_path
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.errors import IndexProblem
from kb.knowledge_base import KnowledgeBase
from kb.stores import milvus_writer
from kb.stores.base import Filters
from kb.stores.milvus import MilvusStore, literal
from kb.stores.milvus_writer import MilvusWriter

pytestmark = pytest.mark.slow

QUESTIONS = ("信访事项多长时间办结", "对复查意见不服怎么办", "民法典第一千零七十九条", "镇里开展了哪些普法活动",
             "邻居噪音扰民可以找谁调解", "申请法律援助需要什么条件", "今天天气怎么样")


def in_milvus(settings: Settings, uri: str, name: str, **changes: object) -> Settings:
    return settings.with_(store="milvus", milvus_uri=uri, kb_name=name, **changes)


def questions() -> list[str]:
    asked = list(QUESTIONS)
    if DEV_SET.is_file():
        asked += [json.loads(line)["q"] for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
    return asked


@pytest.fixture(scope="module")
def milvus_kb(milvus_uri: str, settings: Settings, embedder: Embedder, corpus_kb: KnowledgeBase) -> KnowledgeBase:
    """corpus/ in Milvus, knowledge base `default`, its attached questions too. The local corpus index was built
    first with the same vector cache, so nothing is embedded twice."""
    report = ingest([CORPUS_DIR], in_milvus(settings, milvus_uri, "default"), embedder=embedder)
    assert corpus_kb.store.handles is not None
    assert (report.documents, report.chunks, report.reused, report.questions) == (
        len(corpus_kb.documents), corpus_kb.passage_count(), corpus_kb.passage_count(), len(corpus_kb.store.handles))
    return KnowledgeBase.open(settings=in_milvus(settings, milvus_uri, "default"), embedder=embedder)


def hit_keys(hits) -> list[tuple]:
    return [(h.doc_id, h.article_no, h.chunk_id, h.citation, h.text, h.start, h.end) for h in hits]


def same_handles(milvus: KnowledgeBase, local: KnowledgeBase) -> None:
    """Both stores hold the same attached questions, in the same order, with the same vectors."""
    ours, theirs = milvus.store.handles, local.store.handles
    assert ours is not None and theirs is not None
    assert ours.handles == theirs.handles and np.array_equal(ours.vectors, theirs.vectors)


def test_milvus_finds_what_the_local_index_finds(milvus_kb: KnowledgeBase, corpus_kb: KnowledgeBase) -> None:
    """With the handle stage: the attached questions come from Milvus as they come from the local index."""
    same_handles(milvus_kb, corpus_kb)
    assert milvus_kb.retriever.weighs_handles(milvus_kb.params)
    for question in questions():
        local, remote = corpus_kb.search(question, top_k=5), milvus_kb.search(question, top_k=5)
        assert hit_keys(remote) == hit_keys(local), question
        assert [h.score for h in remote] == pytest.approx([h.score for h in local], rel=1e-3), question


def test_milvus_answers_as_the_local_index_does(milvus_kb: KnowledgeBase, corpus_kb: KnowledgeBase) -> None:
    for question in QUESTIONS:
        local, remote = corpus_kb.ask(question), milvus_kb.ask(question)
        assert (remote.answer, remote.answerable, remote.related) == (local.answer, local.answerable, local.related)
        assert remote.confidence == pytest.approx(local.confidence, abs=1e-3)
    follow_up = milvus_kb.ask("那要是不满意呢？", history=["信访事项多久办结？"])
    assert follow_up.answer == corpus_kb.ask("那要是不满意呢？", history=["信访事项多久办结？"]).answer


def test_passage_vectors_are_the_local_indexs(milvus_kb: KnowledgeBase, corpus_kb: KnowledgeBase) -> None:
    """The follow-up ranker compares candidates by their vectors: both stores give the same ones, in the order
    asked, and zeros for a passage they do not hold."""
    chunks = corpus_kb.store.chunks
    wanted = [chunks[5].chunk_id, chunks[0].chunk_id, "no-such-passage", chunks[-1].chunk_id, chunks[5].chunk_id]
    local, remote = corpus_kb.store.passage_vectors(wanted), milvus_kb.store.passage_vectors(wanted)
    assert local.shape == remote.shape == (5, corpus_kb.embedder.dimension)
    np.testing.assert_allclose(remote, local, atol=1e-6)
    assert not local[2].any() and np.isclose(np.linalg.norm(local[0]), 1.0, atol=1e-3)
    np.testing.assert_array_equal(local[0], local[4])
    assert milvus_kb.store.passage_vectors([]).shape == (0, corpus_kb.embedder.dimension)


def test_filters_behave_the_same(milvus_kb: KnowledgeBase, corpus_kb: KnowledgeBase) -> None:
    petition = next(d for d in corpus_kb.documents.values() if d.title == "信访工作条例")
    for filters in ({"doc_kind": "report"}, {"title_contains": "信访"}, {"doc_id": petition.doc_id},
                    {"doc_kind": "other"}, {"date_from": "2020", "doc_kind": "law"}):
        local = corpus_kb.search("办理期限是多久", top_k=8, filters=filters)
        assert hit_keys(milvus_kb.search("办理期限是多久", top_k=8, filters=filters)) == hit_keys(local), filters
    reports = milvus_kb.search("普法", top_k=10, filters={"doc_kind": "report"})
    assert reports and all(h.doc_kind == "report" for h in reports)


def test_articles_documents_and_info_read_the_same(milvus_kb: KnowledgeBase, corpus_kb: KnowledgeBase) -> None:
    petition = next(d for d in corpus_kb.documents.values() if d.title == "信访工作条例")
    assert milvus_kb.search("信访工作条例第三十四条", top_k=1)[0].article_no == 34
    assert milvus_kb.article(petition.doc_id, 34) == corpus_kb.article(petition.doc_id, 34)
    split = next(c for c in corpus_kb.store.chunks if c.part > 1)  # a long 条 cut in parts: one hit for all of it
    assert milvus_kb.article(split.doc_id, split.article_no) == corpus_kb.article(split.doc_id, split.article_no)
    assert milvus_kb.document(petition.doc_id) == corpus_kb.document(petition.doc_id)
    assert milvus_kb.document_chunks(petition.doc_id) == corpus_kb.document_chunks(petition.doc_id)
    local_info, remote_info = corpus_kb.info(), milvus_kb.info()
    assert remote_info["documents"] == local_info["documents"]
    assert remote_info["chunks"] == local_info["chunks"]
    assert remote_info["questions"] == local_info["questions"] > 0
    assert milvus_kb.attached_questions(petition.doc_id) == corpus_kb.attached_questions(petition.doc_id)
    assert (remote_info["store"], remote_info["kb_name"]) == ("milvus", "default")
    with pytest.raises(Exception, match="没有这个文档"):
        milvus_kb.document("no-such-document")


def test_two_knowledge_bases_in_one_store_are_kept_apart(milvus_uri: str, milvus_kb: KnowledgeBase, tmp_path: Path,
                                                         settings: Settings, embedder: Embedder) -> None:
    town = in_milvus(settings, milvus_uri, "town-b")
    ingest([make_small_corpus(tmp_path)], town, embedder=embedder)
    other = KnowledgeBase.open(settings=town, embedder=embedder)
    assert not set(other.documents) & set(milvus_kb.documents)
    for question in ("信访事项多长时间办结", "路面塌陷多久设置警示标志", "民法典第一千零七十九条"):
        assert {h.doc_id for h in other.search(question, top_k=10)} <= set(other.documents)
        assert {h.doc_id for h in milvus_kb.search(question, top_k=10)} <= set(milvus_kb.documents)
    assert other.search("路面塌陷多久设置警示标志", top_k=1)[0].doc_title == "乡村道路养护条例"


def test_one_service_answers_for_every_township(milvus_uri: str, milvus_kb: KnowledgeBase, corpus_kb: KnowledgeBase,
                                                settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    ingest([make_small_corpus(tmp_path)], in_milvus(settings, milvus_uri, "town-f"), embedder=embedder)
    client = make_client(in_milvus(settings, milvus_uri, "default"), milvus_kb, tmp_path)
    question = "路面塌陷多久设置警示标志"
    assert client.get("/readyz").json()["store"] == {"store": "milvus"}, "where it is: for the admin key only"
    assert milvus_kb.store.describe() == {"store": "milvus", "milvus_uri": milvus_uri, "kb_name": "default"}
    own = client.get("/api/search", params={"q": question}).json()["hits"]
    assert own and all(h["doc_id"] in milvus_kb.documents for h in own)
    other = client.get("/api/search", params={"q": question, "kb": "town-f"}).json()["hits"]
    assert other[0]["doc_title"] == "乡村道路养护条例"
    answer = client.post("/api/ask", json={"question": question, "kb": "town-f"}).json()
    assert answer["citations"][0]["doc_title"] == "乡村道路养护条例" and "二十四小时" in answer["answer"]
    listed = client.get("/api/documents", params={"kb": "town-f"}).json()["documents"]
    assert {d["title"] for d in listed} == {"乡村道路养护条例", "集市摊位管理办法", "某镇2023年工作报告"}
    assert_error(client.get("/api/search", params={"q": question, "kb": "nowhere"}), 404, "unknown_kb")
    assert_error(client.get("/api/search", params={"q": question, "kb": "镇/../x"}), 422, "invalid_request")
    models = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert {"zhengwu-kb", "zhengwu-kb/town-f"} <= models and "zhengwu-kb/default" not in models
    chat = client.post("/v1/chat/completions", json={"model": "zhengwu-kb/town-f",
                                                     "messages": [{"role": "user", "content": question}]}).json()
    assert "乡村道路养护条例" in chat["choices"][0]["message"]["content"] and chat["model"] == "zhengwu-kb/town-f"
    local = make_client(settings, corpus_kb, tmp_path)  # one knowledge base only on local files
    assert_error(local.get("/api/search", params={"q": question, "kb": "town-f"}), 400, "unknown_kb")


def passage_versions(uri: str, name: str, doc_id: str, settings: Settings, of: str = "passages") -> set[str]:
    """The versions a document's rows carry in Milvus: its passages', or (`of="handles"`) its attached questions'."""
    store = MilvusStore.connect(in_milvus(settings, uri, name))
    try:
        rows = store.client.query(getattr(store, f"{of}_collection"), filter=f"kb == {literal(name)} and doc_id == "
                                  f"{literal(doc_id)}", output_fields=["version"], limit=10000)
        return {r["version"] for r in rows}
    finally:
        store.close()


def test_adding_and_removing_a_document_touches_only_that_document(milvus_uri: str, tmp_path: Path,
                                                                   settings: Settings, embedder: Embedder) -> None:
    town = in_milvus(settings, milvus_uri, "town-c")
    corpus = make_small_corpus(tmp_path)
    ingest([corpus], town, embedder=embedder)
    kb = KnowledgeBase.open(settings=town, embedder=embedder)
    before = dict(kb.store.snapshot().versions)

    (corpus / "垃圾分类管理办法.md").write_text(
        "# 垃圾分类管理办法\n\n## 第一章 总则\n\n第一条 厨余垃圾应当每日投放到村里指定的绿色收集桶。\n", encoding="utf-8")
    report = ingest([corpus], town, embedder=embedder)
    after = dict(kb.store.snapshot(force=True).versions)  # not waiting out the once-a-second check
    added = (set(after) - set(before)).pop()
    assert {d: after[d] for d in before} == before  # the others were not rewritten
    assert report.chunks - report.reused <= 1
    assert kb.search("厨余垃圾投放到哪里", top_k=1)[0].doc_id == added

    road = next(d for d, doc in kb.documents.items() if doc.title == "乡村道路养护条例")
    (corpus / "乡村道路养护条例.md").unlink()
    ingest([corpus], town, embedder=embedder)
    kb.store.snapshot(force=True)
    assert road not in kb.documents and set(kb.documents) == set(after) - {road}
    assert all(h.doc_id != road for h in kb.search("路面塌陷多久设置警示标志", top_k=10))
    assert passage_versions(milvus_uri, "town-c", road, settings) == set()


ROAD = "乡村道路养护条例"
SNOW = "昨晚下了一尺厚的雪，村里大路堵死了，乡里几天内要派人来铲？"
FIREWOOD = "通组路上天天有人堆柴火挡道，谁来管？"


def write_sidecar(document: Path, *rows: dict) -> None:
    sidecar_path(document).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                      encoding="utf-8")


def questions_of(kb: KnowledgeBase, doc_id: str) -> list[tuple]:
    handles = kb.store.handles
    return [(h.question, h.target, h.form) for h in handles.handles if h.doc_id == doc_id] if handles else []


def pooled_first(kb: KnowledgeBase, question: str) -> tuple:
    """The passage of the handle nearest the question, as the handle stage finds it in the store."""
    assert kb.store.handles is not None
    return kb.store.handles.match(kb.embedder.encode_question(question)[0], question).pooled[0]


def test_attached_questions_live_and_die_with_their_documents(milvus_uri: str, tmp_path: Path, settings: Settings,
                                                              embedder: Embedder) -> None:
    town = in_milvus(settings, milvus_uri, "town-h")
    corpus = make_small_corpus(tmp_path)
    write_sidecar(corpus / f"{ROAD}.md", {"q": SNOW, "articles": [4], "form": "story"},
                  {"q": "我们村那条通组路上天天有人晒苞谷，能管吗", "articles": [5]})
    write_sidecar(corpus / "集市摊位管理办法.md", {"q": "我腿脚不方便，在集上摆摊也要交钱吗", "articles": [3]})
    write_sidecar(corpus / "某镇2023年工作报告.txt", {"q": "镇上去年建了几个垃圾点", "contains": "新建垃圾收集点"})
    assert ingest([corpus], town, embedder=embedder).questions == 4
    kb = KnowledgeBase.open(settings=town, embedder=embedder)
    local = settings.with_(index_dir=tmp_path / "index")
    ingest([corpus], local, embedder=embedder)
    same_handles(kb, KnowledgeBase.open(settings=local, embedder=embedder))
    by_title = {doc.title: d for d, doc in kb.documents.items()}
    road, market = by_title[ROAD], by_title["集市摊位管理办法"]
    report = next(d for d, doc in kb.documents.items() if doc.kind == "report")
    assert [type(target) for _, target, _ in questions_of(kb, report)] == [str]  # a chunk of text without articles

    # Found end to end: the attached question, asked as written, brings its article first.
    assert pooled_first(kb, SNOW) == (road, 4)
    assert kb.search(SNOW, top_k=1)[0].citation == f"《{ROAD}》第四条"

    # Only the sidecar changed: its questions are replaced, the passages left as they were.
    versions = dict(kb.store.snapshot().versions)
    old = passage_versions(milvus_uri, "town-h", road, settings, "handles")
    write_sidecar(corpus / f"{ROAD}.md", {"q": FIREWOOD, "articles": [5], "form": "short"})
    assert ingest([corpus], town, embedder=embedder).questions == 3
    assert kb.store.snapshot(force=True).versions == versions
    assert questions_of(kb, road) == [(FIREWOOD, 5, "short")]
    assert pooled_first(kb, FIREWOOD) == (road, 5)
    stored = passage_versions(milvus_uri, "town-h", road, settings, "handles")
    assert len(stored) == 1 and stored != old  # the old questions' rows are deleted

    # The document changed too: a new version, its questions with it.
    (corpus / f"{ROAD}.md").write_text(ROAD_LAW.replace("二十四小时", "十二小时"), encoding="utf-8")
    write_sidecar(corpus / f"{ROAD}.md", {"q": SNOW, "articles": [4]})
    ingest([corpus], town, embedder=embedder)
    version = kb.store.snapshot(force=True).versions[road]
    assert version != versions[road] and questions_of(kb, road) == [(SNOW, 4, "")]
    assert passage_versions(milvus_uri, "town-h", road, settings, "handles") == {version}
    assert pooled_first(kb, SNOW) == (road, 4)

    # A deleted document's questions go with it.
    (corpus / "集市摊位管理办法.md").unlink()
    sidecar_path(corpus / "集市摊位管理办法.md").unlink()
    ingest([corpus], town, embedder=embedder)
    kb.store.snapshot(force=True)
    assert market not in kb.documents and questions_of(kb, market) == []
    assert passage_versions(milvus_uri, "town-h", market, settings, "handles") == set()
    assert kb.info()["questions"] == 2


def test_a_knowledge_base_written_before_milvus_held_questions_gets_them_at_the_next_ingest(
        milvus_uri: str, tmp_path: Path, settings: Settings, embedder: Embedder) -> None:
    town = in_milvus(settings, milvus_uri, "town-i")
    corpus = make_small_corpus(tmp_path)
    write_sidecar(corpus / f"{ROAD}.md", {"q": SNOW, "articles": [4]})
    ingest([corpus], town, embedder=embedder)
    writer = MilvusWriter.connect(town)
    try:  # the document rows as an older version wrote them: no attached questions recorded
        for doc_id, live in writer.live_documents().items():
            body = {k: v for k, v in live.body.items() if k != "questions"}
            writer.client.upsert(writer.records_collection, [writer._record(
                "document", writer._key("document", doc_id), json.dumps(body, ensure_ascii=False), doc_id,
                live.version)])
        writer.touch()
    finally:
        writer.close()
    kb = KnowledgeBase.open(settings=town, embedder=embedder)
    versions = dict(kb.store.snapshot().versions)
    assert kb.store.handles is None and kb.search(SNOW, top_k=1)  # read as none, and searched without them

    ingest([corpus], town, embedder=embedder)
    assert kb.store.snapshot(force=True).versions == versions  # only the questions were written
    road = next(d for d, doc in kb.documents.items() if doc.title == ROAD)
    assert questions_of(kb, road) == [(SNOW, 4, "")] and pooled_first(kb, SNOW) == (road, 4)


HANG_AFTER_FIRST_BATCH = """
import sys, time
import kb.stores.milvus_writer as writer

publish = writer.MilvusWriter.publish_document

def publish_then_die(self, *args, **kwargs):
    insert = self.client.insert
    def insert_and_hang(collection, rows, *a, **k):
        result = insert(collection, rows, *a, **k)
        if collection == self.passages_collection:
            print("WRITING", flush=True)
            time.sleep(600)  # killed here: passages written, the document not yet published
        return result
    self.client.insert = insert_and_hang
    return publish(self, *args, **kwargs)

writer.MilvusWriter.publish_document = publish_then_die
writer.WRITE_BATCH = 2
from cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_an_ingest_killed_midway_leaves_the_old_document_served(milvus_uri: str, tmp_path: Path, settings: Settings,
                                                                 embedder: Embedder) -> None:
    town = in_milvus(settings, milvus_uri, "town-d")
    corpus = make_small_corpus(tmp_path)
    ingest([corpus], town, embedder=embedder)
    kb = KnowledgeBase.open(settings=town, embedder=embedder)
    road = next(d for d, doc in kb.documents.items() if doc.title == "乡村道路养护条例")
    old_text = kb.document(road).text
    old_version = kb.store.snapshot().versions[road]

    (corpus / "乡村道路养护条例.md").write_text(ROAD_LAW.replace("二十四小时", "十二小时"), encoding="utf-8")
    env = {**os.environ, "KB_STORE": "milvus", "KB_MILVUS_URI": milvus_uri, "KB_CACHE_DIR": str(settings.cache_dir),
           "KB_VECTOR_CACHE": str(settings.vector_cache_dir)}
    writer = subprocess.Popen([sys.executable, "-c", HANG_AFTER_FIRST_BATCH, "ingest", "-q", "--kb", "town-d",
                               str(corpus)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert writer.stdout.readline().strip() == "WRITING"
    finally:
        writer.kill()
        writer.wait(timeout=30)

    half_written = passage_versions(milvus_uri, "town-d", road, settings)
    assert len(half_written) == 2 and old_version in half_written  # the new version's first rows are there …
    assert kb.store.snapshot(force=True).versions[road] == old_version  # … but unpublished: readers see the old
    for passage in kb.document_chunks(road)[:2]:  # … and its rows, the same text, take no place among the best
        vector = kb.embedder.encode_passages([passage.text])[0]
        pool = kb.store.gather([vector], "", 1, Filters(), [], [])
        assert [c.chunk_id for c in pool.chunks] == [passage.chunk_id]
    assert kb.document(road).text == old_text
    hit = kb.search("路面塌陷多久设置警示标志", top_k=1)[0]
    assert "二十四小时" in hit.text
    assert "十二小时" not in "".join(c.text for c in kb.document_chunks(road))

    ingest([corpus], town, embedder=embedder)  # the next ingest publishes the new version and deletes the rest
    new_version = kb.store.snapshot(force=True).versions[road]
    assert passage_versions(milvus_uri, "town-d", road, settings) == {new_version} != {old_version}
    assert "十二小时" in kb.search("路面塌陷多久设置警示标志", top_k=1)[0].text


def test_ingests_of_one_knowledge_base_take_turns(milvus_uri: str, tmp_path: Path, settings: Settings,
                                                  embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    town = in_milvus(settings, milvus_uri, "town-g")
    holder = MilvusWriter.connect(town)
    holder.create_collections(embedder.dimension)
    claim = holder.acquire_writer()  # another ingest, still running (this process is alive)
    monkeypatch.setattr(milvus_writer, "WRITER_WAIT_SECONDS", 1.0)
    with pytest.raises(IndexProblem, match="another ingest"):
        ingest([make_small_corpus(tmp_path)], town, embedder=embedder)
    holder.release_writer(claim)
    assert ingest([tmp_path / "corpus"], town, embedder=embedder).documents == 3
    holder.close()


def start_replica(port: int, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, "kb serve exited"
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not become ready")


def test_two_api_processes_share_one_knowledge_base(milvus_uri: str, tmp_path: Path, settings: Settings,
                                                   embedder: Embedder) -> None:
    corpus = make_small_corpus(tmp_path)
    town = in_milvus(settings, milvus_uri, "town-e", corpus_dir=corpus)
    ingest([corpus], town, embedder=embedder)
    env = {**os.environ, "KB_STORE": "milvus", "KB_MILVUS_URI": milvus_uri, "KB_NAME": "town-e",
           "KB_CORPUS": str(corpus), "KB_CACHE_DIR": str(settings.cache_dir), "KB_ADMIN_KEY": "replica-test",
           "KB_VECTOR_CACHE": str(settings.vector_cache_dir), "KB_QUERY_LOG": str(tmp_path / "querylog.sqlite")}
    ports = [free_port(), free_port()]
    replicas = [start_replica(port, env) for port in ports]
    try:
        first, second = (f"http://127.0.0.1:{port}" for port in ports)
        for url, process in zip((first, second), replicas):
            wait_ready(url, process)
        question = {"q": "厨余垃圾投放到哪里", "top_k": 1}
        assert [h["doc_title"] for h in httpx.get(f"{second}/api/search", params=question).json()["hits"]] == [
            "某镇2023年工作报告"]

        auth = {"Authorization": "Bearer replica-test"}
        upload = "# 垃圾分类管理办法\n\n## 第一章 总则\n\n第一条 厨余垃圾应当每日投放到村里指定的绿色收集桶。\n"
        job = httpx.post(f"{first}/api/admin/documents", params={"filename": "垃圾分类管理办法.md"},
                         content=upload.encode("utf-8"), headers=auth, timeout=30).json()
        deadline = time.monotonic() + 180
        while httpx.get(f"{first}/api/admin/jobs/{job['job_id']}", headers=auth).json()["status"] != "done":
            assert time.monotonic() < deadline, "the upload's ingest did not finish"
            time.sleep(0.5)
        deadline = time.monotonic() + 10
        while True:  # the other replica, never restarted or reloaded, finds it within its refresh interval
            hits = httpx.get(f"{second}/api/search", params=question).json()["hits"]
            if hits and hits[0]["doc_title"] == "垃圾分类管理办法":
                break
            assert time.monotonic() < deadline, hits
            time.sleep(0.5)
    finally:
        for process in replicas:
            process.terminate()
        for process in replicas:
            process.wait(timeout=30)
    shutil.rmtree(corpus, ignore_errors=True)
