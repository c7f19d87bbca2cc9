"""Ingesting into Milvus (issue 26, county deployment): BM25 built in steps is BM25 built in one go; the writer's
claim is a lock (Strong reads, a short lease kept alive by a thread, dead claimers taken over); a milvus-lite folder
another process has open is reported as such; and every read that may exceed a page is paged.

The claim and milvus-lite tests need no model (a few seconds each); the ingests use the real model (slow)."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_small_corpus
from pymilvus import MilvusClient
from test_milvus import QUESTIONS, hit_keys, in_milvus, passage_versions

from ingest.build import ingest
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.errors import IndexProblem
from kb.knowledge_base import KnowledgeBase
from kb.stores import milvus, milvus_writer
from kb.stores.base import Filters
from kb.stores.milvus import MilvusStore, literal
from kb.stores.milvus_writer import MilvusWriter

DIMENSION = 384  # the model's; the claim tests create the collections without loading it


def writer_for(settings: Settings, uri: str, name: str) -> MilvusWriter:
    store = MilvusWriter.connect(in_milvus(settings, uri, name))
    store.create_collections(DIMENSION)
    return store


def claim_owners(store: MilvusWriter) -> list[str]:
    return [c["owner"] for c in store._claims()]


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


# --- the writer's claim --------------------------------------------------------------------------------------------


def test_a_claim_whose_process_died_on_this_machine_is_taken_over_at_once(milvus_uri: str, settings: Settings,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = writer_for(settings, milvus_uri, "claim-dead")
    try:
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()
        dead = f"{socket.gethostname()}:{ended.pid}:1"
        store._write_claim(dead)  # a killed ingest's claim, far from running out
        assert claim_owners(store) == [dead]
        monkeypatch.setattr(milvus_writer, "WRITER_WAIT_SECONDS", 0.0)  # no waiting: taken over at once or never
        started = time.monotonic()
        owner = store.acquire_writer()
        assert time.monotonic() - started < 5
        assert claim_owners(store) == [owner]  # the dead one's row is gone
        store.release_writer(owner)
        assert claim_owners(store) == []
    finally:
        store.close()


def test_a_claim_from_another_machine_holds_until_its_lease_runs_out(milvus_uri: str, settings: Settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(milvus_writer, "WRITER_LEASE_SECONDS", 2.0)
    store = writer_for(settings, milvus_uri, "claim-remote")
    try:
        remote = "another-host:4242:1"  # its pid means nothing here: only the lease tells
        expires = store._write_claim(remote)
        monkeypatch.setattr(milvus_writer, "WRITER_WAIT_SECONDS", 0.0)
        with pytest.raises(IndexProblem, match=r"another ingest .*another-host"):
            store.acquire_writer()
        monkeypatch.setattr(milvus_writer, "WRITER_WAIT_SECONDS", 30.0)
        owner = store.acquire_writer()
        assert time.time() >= expires, "taken before the lease ran out"
        assert time.time() < expires + 10
        assert claim_owners(store) == [owner]
        store.release_writer(owner)
    finally:
        store.close()


def test_a_running_ingest_keeps_its_claim_and_one_that_stalled_past_it_loses_it(
        milvus_uri: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(milvus_writer, "WRITER_LEASE_SECONDS", 1.0)  # renewed every 0.25 s by its thread
    holder, other = writer_for(settings, milvus_uri, "claim-kept"), writer_for(settings, milvus_uri, "claim-kept")
    try:
        owner = holder.acquire_writer()
        first = holder._claims()[0]["expires"]
        monkeypatch.setattr(milvus_writer, "WRITER_WAIT_SECONDS", 0.0)
        started = time.monotonic()
        wait_until(lambda: time.monotonic() - started > 3, 5, "")  # three leases, without any renew_writer call
        with pytest.raises(IndexProblem, match="another ingest"):
            other.acquire_writer()
        assert holder._claims()[0]["expires"] > first + 2
        holder.renew_writer(owner)

        assert holder._claim is not None
        holder._claim.stop.set()  # the holder stalls: nothing renews its claim any more
        holder._claim.heartbeat.join(timeout=10)
        monkeypatch.setattr(milvus_writer, "WRITER_WAIT_SECONDS", 10.0)
        taken = other.acquire_writer()  # once the lease has run out
        holder._claim.renewed = 0.0  # its next renew_writer checks
        with pytest.raises(IndexProblem, match=r"ran out|taken over"):
            holder.renew_writer(owner)
        holder.release_writer(owner)  # deletes its own row only
        assert claim_owners(other) == [taken]
        other.release_writer(taken)
    finally:
        holder.close()
        other.close()


def test_claims_made_at_the_same_moment_never_overlap(milvus_uri: str, settings: Settings) -> None:
    stores = [writer_for(settings, milvus_uri, "claim-race") for _ in range(3)]
    held: list[tuple[float, float]] = []
    errors: list[Exception] = []

    def take_turns(store: MilvusWriter) -> None:
        try:
            for _ in range(2):
                owner = store.acquire_writer()
                start = time.monotonic()
                time.sleep(0.2)
                held.append((start, time.monotonic()))
                store.release_writer(owner)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=take_turns, args=(store,)) for store in stores]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        for store in stores:
            store.close()
    assert not errors and len(held) == 6
    held.sort()
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(held)), held


# --- a milvus-lite folder another process has open ----------------------------------------------------------------

HOLD_OPEN = """
import sys
from pymilvus import MilvusClient
MilvusClient(uri=sys.argv[1])
print("OPEN", flush=True)
sys.stdin.read()
"""


def test_a_milvus_lite_folder_open_in_another_process_is_named(tmp_path: Path, settings: Settings) -> None:
    folder = str(tmp_path / "milvus.db")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, folder], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "OPEN"
        with pytest.raises(IndexProblem) as raised:
            MilvusStore.connect(in_milvus(settings, folder, "default"))
        message = str(raised.value)
        assert f"{folder} is in use by another process (process {holder.pid})" in message
        assert "kb serve" in message and "python -m milvus_lite server" in message
        assert "check KB_MILVUS_URI" not in message
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    MilvusStore.connect(in_milvus(settings, folder, "default")).close()  # free again once it has ended


# --- BM25 built in steps (slow: the model) -------------------------------------------------------------------------


def live_sparse(kb: KnowledgeBase) -> dict[str, dict[int, float]]:
    """Every published passage's BM25 sparse vector, by chunk id."""
    store = kb.store
    assert isinstance(store, MilvusStore)
    published = ", ".join(literal(v) for v in store.snapshot(force=True).versions.values())
    rows = store._query_all(store.passages_collection, f"version in [{published}]", ["chunk_id", "sparse"])
    return {r["chunk_id"]: dict(r["sparse"]) for r in rows}


@pytest.mark.slow
def test_bm25_built_in_steps_is_bm25_built_in_one_go(milvus_uri: str, tmp_path: Path, settings: Settings,
                                                      embedder: Embedder) -> None:
    corpus = make_small_corpus(tmp_path)
    report, aside = corpus / "某镇2023年工作报告.txt", tmp_path / "report.txt"
    steps, one_go = in_milvus(settings, milvus_uri, "bm25-steps"), in_milvus(settings, milvus_uri, "bm25-one-go")
    report.rename(aside)
    ingest([corpus], steps, embedder=embedder)  # the first two documents …
    built = KnowledgeBase.open(settings=steps, embedder=embedder)
    first_norm, first_versions = built.store.snapshot().base["avg_length"], dict(built.store.snapshot().versions)
    aside.rename(report)
    ingest([corpus], steps, embedder=embedder)  # … then all three
    ingest([corpus], one_go, embedder=embedder)
    stepped, whole = (KnowledgeBase.open(settings=s, embedder=embedder) for s in (steps, one_go))

    norm = whole.store.snapshot().base["avg_length"]
    assert stepped.store.snapshot(force=True).base["avg_length"] == norm != first_norm  # the third moved it
    versions = stepped.store.snapshot().versions
    assert {d: versions[d] for d in first_versions} == first_versions  # reweighted in place, not written again
    sparse = live_sparse(stepped)
    assert sparse == live_sparse(whole) and len(sparse) == stepped.passage_count()

    for question in QUESTIONS:
        vector = embedder.encode_queries([question])[0]
        for k in (3, 100):  # Milvus' sparse and dense searches (3 of all), or every passage (100)
            pools = [kb.store.gather([vector], question, k, Filters(), [], []) for kb in (stepped, whole)]
            assert [c.chunk_id for c in pools[0].chunks] == [c.chunk_id for c in pools[1].chunks], (question, k)
            assert np.array_equal(pools[0].bm25, pools[1].bm25), (question, k)
        ours, theirs = stepped.search(question, top_k=5), whole.search(question, top_k=5)
        assert hit_keys(ours) == hit_keys(theirs), question
        assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], abs=1e-6), question
    for kb in (built, stepped, whole):
        kb.store.close()


# --- paged reads (slow: the model) ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_read_pages_past_a_full_page(milvus_uri: str, tmp_path: Path, settings: Settings, embedder: Embedder,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = make_small_corpus(tmp_path)
    town, other = in_milvus(settings, milvus_uri, "paged"), in_milvus(settings, milvus_uri, "paged-2")
    for name in (town, other):
        ingest([corpus], name, embedder=embedder)
    kb = KnowledgeBase.open(settings=town, embedder=embedder)
    store = kb.store
    assert isinstance(store, MilvusStore)
    names, documents = store.names(), dict(kb.documents)
    counts = store.chunk_counts()
    chunks = {d: kb.document_chunks(d) for d in documents}
    road = next(d for d, doc in documents.items() if doc.title == "乡村道路养护条例")
    assert counts[road] > 2 and len(documents) == 3 and {"paged", "paged-2"} <= set(names)

    pages = {"iterators": 0}
    iterate = MilvusClient.query_iterator

    def counted(self, *args, **kwargs):
        pages["iterators"] += 1
        return iterate(self, *args, **kwargs)

    monkeypatch.setattr(MilvusClient, "query_iterator", counted)
    monkeypatch.setattr(milvus, "QUERY_PAGE", 2)  # every result here is longer than a page
    assert store.names() == names
    assert store.snapshot(force=True).documents.keys() == documents.keys() and store.chunk_counts() == counts
    assert {d: kb.document_chunks(d) for d in documents} == chunks
    assert kb.article(road, 1) and kb.search("路面塌陷多久设置警示标志", top_k=1)[0].doc_id == road
    assert pages["iterators"] >= 4

    old = store.snapshot().versions[road]
    (corpus / "乡村道路养护条例.md").write_text((corpus / "乡村道路养护条例.md").read_text(encoding="utf-8")
                                          .replace("二十四小时", "十二小时"), encoding="utf-8")
    (corpus / "集市摊位管理办法.md").unlink()
    ingest([corpus], town, embedder=embedder)  # live documents and what drop_unpublished deletes, in pages of 2
    new = store.snapshot(force=True).versions[road]
    assert new != old and passage_versions(milvus_uri, "paged", road, settings) == {new}
    assert len(store.documents) == 2 and store.chunk_counts()[road] == counts[road]
    rows = store._query_all(store.passages_collection, "doc_id != \"\"", ["version"])
    assert {r["version"] for r in rows} == set(store.snapshot().versions.values())  # nothing else left
    monkeypatch.setattr(milvus, "QUERY_PAGE", 4096)
    assert len(store._query_all(store.passages_collection, "doc_id != \"\"", ["version"])) == len(rows)
    kb.store.close()
