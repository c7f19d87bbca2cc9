"""The index directory: what ingest writes, the atomic swap, and the checks made when an index is loaded.

Uses the real model on a tiny synthetic corpus (conftest.make_small_corpus), so each build takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import faiss
import numpy as np
import pytest
from conftest import make_small_corpus

from ingest.build import IngestError, ensure_index, ingest
from ingest.chunk import chunk_document, indexing_text
from ingest.parse import parse_document
from ingest.read import read_source
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.errors import IndexCorruptError, IndexMismatchError, IndexMissingError, IndexProblem
from kb.knowledge_base import KnowledgeBase
from kb.schema import CHUNKER_VERSION
from kb.stores.index_dir import FORMAT_VERSION, load_index, remove_index, stored_vectors
from kb.stores.local import IndexView

INDEX_FILES = {"manifest.json", "dense.faiss", "meta.sqlite", "lexical_term_ptr.npy", "lexical_docs.npy",
               "lexical_weights.npy", "lexical_vocab.json"}
#: Questions about the synthetic corpus and the article that answers each.
QUESTIONS = {
    "路面塌陷后多长时间内要设置警示标志？": ("乡村道路养护条例", 3),
    "集市摊位费每天多少钱": ("集市摊位管理办法", 3),
}


def build(corpus: Path, index_dir: Path, settings: Settings, embedder: Embedder):
    return ingest([corpus], settings.with_(index_dir=index_dir), embedder=embedder)


def open_kb(index_dir: Path, settings: Settings, embedder: Embedder) -> KnowledgeBase:
    return KnowledgeBase.open(index_dir, settings=settings.with_(index_dir=index_dir), embedder=embedder)


def answers(kb: KnowledgeBase) -> dict[str, list[dict]]:
    return {q: [h.to_dict() for h in kb.search(q, top_k=3)] for q in QUESTIONS}


def builds_dir(index_dir: Path) -> Path:
    return index_dir.parent / f".{index_dir.name}.builds"


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, settings: Settings, embedder: Embedder) -> Path:
    """A read-only index of the small corpus, shared by this module's tests."""
    root = tmp_path_factory.mktemp("small_index")
    index_dir = root / "index"
    build(make_small_corpus(root), index_dir, settings, embedder)
    return index_dir


@pytest.fixture
def fresh_index(small_corpus: Path, settings: Settings, embedder: Embedder) -> Path:
    """An index of its own for a test that replaces or breaks it."""
    index_dir = small_corpus.parent / "index"
    build(small_corpus, index_dir, settings, embedder)
    return index_dir


@pytest.fixture
def index_copy(small_index: Path, tmp_path: Path) -> Path:
    """A plain copy of the small index's build folder, to tamper with."""
    copy = tmp_path / "index_copy"
    shutil.copytree(small_index.resolve(), copy)
    return copy


# --- what a build holds -----------------------------------------------------------------------------------------


def test_index_layout_and_manifest(small_index: Path, embedder: Embedder) -> None:
    assert small_index.is_symlink()
    build_folder = small_index.resolve()
    assert build_folder.parent == builds_dir(small_index).resolve()
    assert {p.name for p in build_folder.iterdir()} == INDEX_FILES

    manifest = json.loads((small_index / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["chunker_version"] == CHUNKER_VERSION
    assert manifest["embedding"] == {"model_id": embedder.model_id, "fingerprint": embedder.fingerprint,
                                     "dimension": 384}
    corpus = small_index.parent / "corpus"
    expected_hashes = {p.name: hashlib.sha256(read_source(p).text.encode("utf-8")).hexdigest()
                       for p in corpus.iterdir()}
    assert manifest["documents"] == expected_hashes
    built_at = datetime.strptime(manifest["built_at"], "%Y-%m-%dT%H:%M:%S%z")
    assert abs((datetime.now(built_at.tzinfo) - built_at).total_seconds()) < 3600
    assert manifest["counts"]["documents"] == 3


def test_loaded_index_holds_what_the_chunker_made(small_index: Path, settings: Settings, embedder: Embedder) -> None:
    kb = open_kb(small_index, settings, embedder)
    corpus = small_index.parent / "corpus"
    expected = []
    for path in sorted(corpus.iterdir()):
        parsed = parse_document(read_source(path).text, path.name, path.suffix == ".md")
        expected += chunk_document(parsed, settings.max_chunk_chars, settings.report_chunk_chars)
        stored = kb.documents[parsed.document.doc_id]
        assert (stored.title, stored.kind, stored.doc_date, stored.text) == (
            parsed.document.title, parsed.document.kind, parsed.document.doc_date, parsed.document.text)
        assert stored.dates == parsed.document.dates
    assert kb.store.chunks == expected
    assert kb.store.manifest["counts"]["chunks"] == len(expected) == kb.store.dense.ntotal
    kinds = sorted(d.kind for d in kb.documents.values())
    assert kinds == ["law", "law", "report"]
    road = next(d for d in kb.documents.values() if d.title == "乡村道路养护条例")
    assert road.doc_date == "2023-06-15"


@pytest.mark.parametrize(("question", "gold"), list(QUESTIONS.items()))
def test_small_index_answers(small_index: Path, settings: Settings, embedder: Embedder,
                             question: str, gold: tuple[str, int]) -> None:
    hit = open_kb(small_index, settings, embedder).search(question)[0]
    assert (hit.doc_title, hit.article_no) == gold


# --- atomic swap -------------------------------------------------------------------------------------------------


class EmbedderFailingMidway:
    """Fault injection: the real embedder's identity, but passage encoding fails (or returns a malformed array)."""

    def __init__(self, real: Embedder, malformed: bool = False) -> None:
        self.model_id, self.fingerprint, self.dimension = real.model_id, real.fingerprint, real.dimension
        self.malformed = malformed

    def encode_passages(self, passages, show_progress: bool = False) -> np.ndarray:
        if self.malformed:  # one flat vector: writing the build fails after it has started
            return np.zeros(len(passages), dtype=np.float32)
        raise RuntimeError("injected failure while embedding")


def _state(index_dir: Path) -> tuple[Path, list[str]]:
    return index_dir.resolve(), sorted(p.name for p in builds_dir(index_dir).iterdir())


@pytest.mark.parametrize("malformed", [False, True], ids=["embedding-fails", "writing-fails"])
def test_failed_ingest_leaves_the_old_index_in_use(fresh_index: Path, settings: Settings, embedder: Embedder,
                                                   malformed: bool) -> None:
    before = answers(open_kb(fresh_index, settings, embedder))
    state = _state(fresh_index)
    corpus = fresh_index.parent / "corpus"
    (corpus / "新增办法.md").write_text("# 新增办法\n\n第一条 新内容。\n\n第二条 更多。\n\n第三条 最后。\n", encoding="utf-8")
    with pytest.raises((RuntimeError, IndexError, ValueError)):
        ingest([corpus], settings.with_(index_dir=fresh_index), embedder=EmbedderFailingMidway(embedder, malformed))
    assert _state(fresh_index) == state, "no new or half-written build folder, and the link is unchanged"
    after = open_kb(fresh_index, settings, embedder)
    assert answers(after) == before
    assert "新增办法" not in {d.title for d in after.documents.values()}


def test_ingest_of_only_unreadable_files_changes_nothing(fresh_index: Path, settings: Settings,
                                                         embedder: Embedder, tmp_path: Path) -> None:
    before = answers(open_kb(fresh_index, settings, embedder))
    state = _state(fresh_index)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "garbage.txt").write_bytes(b"\x00\x01\x02" * 100)
    (bad / "broken.docx").write_bytes(os.urandom(1024))
    with pytest.raises(IngestError, match="existing index was not changed") as error:
        ingest([bad], settings.with_(index_dir=fresh_index), embedder=embedder)
    assert "garbage.txt" in str(error.value) and "broken.docx" in str(error.value)
    assert _state(fresh_index) == state
    assert answers(open_kb(fresh_index, settings, embedder)) == before


def test_ingest_of_a_missing_path_fails(tmp_path: Path, settings: Settings, embedder: Embedder) -> None:
    with pytest.raises(IngestError, match="no such file or folder"):
        ingest([tmp_path / "nowhere"], settings.with_(index_dir=tmp_path / "index"), embedder=embedder)
    assert not (tmp_path / "index").exists()


def test_second_ingest_replaces_the_index_and_removes_the_old_build(fresh_index: Path, settings: Settings,
                                                                    embedder: Embedder) -> None:
    old_kb = open_kb(fresh_index, settings, embedder)
    old_answers = answers(old_kb)
    old_build = fresh_index.resolve()
    corpus = fresh_index.parent / "corpus"
    (corpus / "集市摊位管理办法.md").unlink()
    (corpus / "村规民约.md").write_text(
        "# 村规民约\n\n2024年1月10日 村民会议通过\n\n<!-- INFO END -->\n\n"
        "第一条 村民应当爱护公共设施。\n\n第二条 禁止在河道内倾倒垃圾。\n\n第三条 红白喜事从简办理，宴席不超过十桌。\n",
        encoding="utf-8")
    report = build(corpus, fresh_index, settings, embedder)
    assert report.documents == 3 and report.skipped == []
    new_build = fresh_index.resolve()
    assert new_build != old_build
    assert not old_build.exists(), "the replaced build is removed"
    assert [p.name for p in builds_dir(fresh_index).iterdir()] == [new_build.name]
    new_kb = open_kb(fresh_index, settings, embedder)
    assert {d.title for d in new_kb.documents.values()} == {"乡村道路养护条例", "村规民约", "某镇2023年工作报告"}
    assert new_kb.search("宴席不超过几桌")[0].doc_title == "村规民约"
    # A knowledge base opened before the swap keeps answering from what it loaded.
    assert answers(old_kb) == old_answers


def test_publishing_keeps_a_build_another_ingest_is_still_writing(fresh_index: Path, settings: Settings,
                                                                   embedder: Embedder) -> None:
    in_progress = builds_dir(fresh_index) / "20990101T000000-1-1.partial"
    in_progress.mkdir()
    (in_progress / "manifest.json").write_text("{}", encoding="utf-8")
    report = build(fresh_index.parent / "corpus", fresh_index, settings, embedder)
    assert in_progress.is_dir(), "a concurrent ingest's unfinished build must not be deleted"
    assert len(open_kb(fresh_index, settings, embedder).documents) == report.documents == 3


def test_ingest_refuses_to_replace_a_real_directory(small_corpus: Path, settings: Settings, embedder: Embedder) -> None:
    index_dir = small_corpus.parent / "index"
    index_dir.mkdir()
    (index_dir / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(IndexProblem, match="real directory"):
        build(small_corpus, index_dir, settings, embedder)
    assert (index_dir / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_refused_publish_leaves_no_build_behind(small_corpus: Path, settings: Settings, embedder: Embedder) -> None:
    index_dir = small_corpus.parent / "index"
    index_dir.mkdir()
    with pytest.raises(IndexProblem):
        build(small_corpus, index_dir, settings, embedder)
    assert list(builds_dir(index_dir).iterdir()) == []


# --- checks when loading ----------------------------------------------------------------------------------------


def _edit_manifest(index_dir: Path, edit) -> None:
    path = index_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")


def test_copied_index_loads(index_copy: Path, settings: Settings, embedder: Embedder) -> None:
    """The tampering tests below start from a copy that works."""
    kb = open_kb(index_copy, settings, embedder)
    assert (kb.search("集市摊位费每天多少钱")[0].doc_title, len(kb.documents)) == ("集市摊位管理办法", 3)


@pytest.mark.parametrize(("field", "value"), [("fingerprint", "0123456789abcdef"), ("model_id", "bge-small-zh")])
def test_model_mismatch_is_refused(index_copy: Path, settings: Settings, embedder: Embedder,
                                   field: str, value: str) -> None:
    _edit_manifest(index_copy, lambda m: m["embedding"].update({field: value}))
    with pytest.raises(IndexMismatchError, match="`kb ingest`") as error:
        open_kb(index_copy, settings, embedder)
    assert value in str(error.value) and embedder.fingerprint in str(error.value)


def test_format_version_mismatch_is_refused(index_copy: Path, settings: Settings, embedder: Embedder) -> None:
    _edit_manifest(index_copy, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(IndexMismatchError, match="format version.*`kb ingest`"):
        open_kb(index_copy, settings, embedder)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: (d / "dense.faiss").write_bytes(os.urandom(4096)), id="dense-junk"),
        pytest.param(lambda d: (d / "dense.faiss").write_bytes((d / "dense.faiss").read_bytes()[:1000]), id="dense-truncated"),
        pytest.param(lambda d: (d / "meta.sqlite").write_bytes(b"junk" * 1000), id="sqlite-junk"),
        pytest.param(lambda d: (d / "lexical_vocab.json").unlink(), id="lexical-missing"),
        # Random bytes over the vectors, the file's size unchanged: every count agrees, only the checksum tells.
        pytest.param(lambda d: _overwrite_tail(d / "dense.faiss", 384 * 4), id="vectors-overwritten-same-size"),
        pytest.param(lambda d: _overwrite_tail(d / "lexical_weights.npy", 64), id="bm25-weights-overwritten"),
        pytest.param(lambda d: (d / "manifest.json").write_text("{not json", encoding="utf-8"), id="manifest-junk"),
        pytest.param(lambda d: _edit_manifest(d, lambda m: m["counts"].update(chunks=m["counts"]["chunks"] + 1)),
                     id="counts-disagree"),
        # The wrong shapes, one of each kind (tests/test_index_integrity.py has the rest).
        pytest.param(lambda d: (d / "manifest.json").write_text("[]", encoding="utf-8"), id="manifest-a-list"),
        pytest.param(lambda d: _edit_manifest(d, lambda m: m["counts"].update(chunks="3")), id="count-a-string"),
        pytest.param(lambda d: _edit_manifest(d, lambda m: m.pop("embedding")), id="embedding-missing"),
        # Vectors that are no model's, the checksums recomputed to match: only their length tells.
        pytest.param(lambda d: _replace_vectors(d, lambda v: v * np.float32(1e30)), id="vectors-scaled-1e30"),
        pytest.param(lambda d: _replace_vectors(d, lambda v: np.where(np.arange(len(v))[:, None] == 1, np.nan, v)),
                     id="nan-in-one-vector"),
    ],
)
def test_damaged_index_is_reported_as_corrupt(index_copy: Path, settings: Settings, embedder: Embedder, damage) -> None:
    damage(index_copy)
    with pytest.raises(IndexCorruptError, match="`kb ingest`"):
        open_kb(index_copy, settings, embedder)


def _overwrite_tail(path: Path, size: int) -> None:
    data = bytearray(path.read_bytes())
    data[-size:] = os.urandom(size)
    path.write_bytes(bytes(data))


def _replace_vectors(index_dir: Path, change) -> None:
    """Rewrite the passage vectors as `change` makes them, and the manifest's checksums as kb.stores.index_dir computes them."""
    vectors = change(stored_vectors(faiss.read_index(str(index_dir / "dense.faiss"))))
    dense = faiss.IndexFlatIP(vectors.shape[1])
    dense.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(dense, str(index_dir / "dense.faiss"))
    _edit_manifest(index_dir, lambda m: m.update(checksums={
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in index_dir.iterdir() if p.name != "manifest.json"}))


def test_chunker_version_mismatch_is_refused(index_copy: Path, settings: Settings, embedder: Embedder) -> None:
    _edit_manifest(index_copy, lambda m: m.update(chunker_version=CHUNKER_VERSION - 1))
    with pytest.raises(IndexMismatchError, match="chunker version.*`kb ingest`"):
        open_kb(index_copy, settings, embedder)


def test_first_start_rebuilds_an_index_cut_by_another_chunker(fresh_index: Path, small_corpus: Path,
                                                              settings: Settings, embedder: Embedder) -> None:
    own = settings.with_(index_dir=fresh_index, corpus_dir=small_corpus)
    assert ensure_index(own) is None, "a current index is used as it is"
    _edit_manifest(fresh_index, lambda m: m.update(chunker_version=CHUNKER_VERSION - 1))
    report = ensure_index(own)
    assert report is not None and report.documents == 3
    assert open_kb(fresh_index, settings, embedder).store.manifest["chunker_version"] == CHUNKER_VERSION


def test_non_finite_vectors_never_break_an_answer(small_index: Path, settings: Settings,
                                                  embedder: Embedder) -> None:
    """An index of NaN vectors is refused when loaded (above), but a store filled another way (Milvus) is not
    checked so: NaN vectors that reach a store anyway still give answers, with a finite confidence that the
    question log can store."""
    loaded = load_index(small_index)
    vectors = stored_vectors(loaded.dense).copy()
    vectors[::2] = np.nan
    dense = faiss.IndexFlatIP(vectors.shape[1])
    dense.add(vectors)
    damaged = KnowledgeBase(IndexView(replace(loaded, dense=dense)), embedder, settings.retrieval, settings.answer,
                            settings.llm.generator(), settings.identity)
    for question in QUESTIONS:
        answer = damaged.ask(question)
        assert np.isfinite(answer.confidence) and all(np.isfinite(c.hit.score) for c in answer.citations)
        assert all(np.isfinite(h.score) for h in damaged.search(question))


def test_missing_index(tmp_path: Path, settings: Settings, embedder: Embedder) -> None:
    with pytest.raises(IndexMissingError, match="`kb ingest`"):
        open_kb(tmp_path / "no-index", settings, embedder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexMissingError):
        open_kb(tmp_path / "empty", settings, embedder)


# --- files that cannot be read ----------------------------------------------------------------------------------


def test_broken_files_are_skipped_and_reported(small_corpus: Path, settings: Settings, embedder: Embedder) -> None:
    (small_corpus / "扫描件.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + os.urandom(600))
    (small_corpus / "通知.docx").write_bytes(os.urandom(2048))
    (small_corpus / "README.md").write_text("# 说明\n\n本文件夹存放法规。\n", encoding="utf-8")
    (small_corpus / ".~lock.通知.docx#").write_text("lock", encoding="utf-8")
    (small_corpus / "表格.xlsx").write_bytes(b"PK\x03\x04")
    index_dir = small_corpus.parent / "index"
    report = build(small_corpus, index_dir, settings, embedder)
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == {"扫描件.txt", "通知.docx"}
    assert "NUL" in skipped["扫描件.txt"] or "binary" in skipped["扫描件.txt"]
    assert "not a valid .docx" in skipped["通知.docx"]
    assert report.documents == 3 and report.chunks > 0
    manifest = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["documents"]) == {"乡村道路养护条例.md", "集市摊位管理办法.md", "某镇2023年工作报告.txt"}
    kb = open_kb(index_dir, settings, embedder)
    assert len(kb.store.chunks) == report.chunks


def test_unsupported_file_named_explicitly_is_reported(small_corpus: Path, settings: Settings,
                                                       embedder: Embedder) -> None:
    sheet = small_corpus.parent / "台账.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    report = ingest([small_corpus, sheet], settings.with_(index_dir=small_corpus.parent / "index"), embedder=embedder)
    assert [(Path(s.path).name, "unsupported file type" in s.reason) for s in report.skipped] == [("台账.xlsx", True)]
    assert report.documents == 3


# --- another sentence-transformers model, selected by one setting ---------------------------------------------


def test_another_model_is_selectable_and_its_index_is_kept_apart(small_index: Path, small_corpus: Path,
                                                                  settings: Settings, embedder: Embedder,
                                                                  tmp_path: Path) -> None:
    """A user's own model folder (here: the default model's files without its query/passage prompts)."""
    own_model = tmp_path / "my-model"
    shutil.copytree(settings.model_dir, own_model, ignore=shutil.ignore_patterns("model.safetensors"))
    (own_model / "model.safetensors").symlink_to(settings.model_dir / "model.safetensors")
    (own_model / "config_sentence_transformers.json").write_text('{"prompts": {}}', encoding="utf-8")
    own_settings = settings.with_(embedding_model=str(own_model), index_dir=tmp_path / "own-index",
                                  embedding_backend="torch")
    own_embedder = Embedder(own_settings)
    assert own_embedder.model_id == str(own_model) and own_embedder.dimension == 384
    with pytest.raises(IndexMismatchError, match="kb ingest"):
        KnowledgeBase.open(small_index, settings=own_settings, embedder=own_embedder)
    ingest([small_corpus], own_settings, embedder=own_embedder)
    own_kb = KnowledgeBase.open(settings=own_settings, embedder=own_embedder)
    assert own_kb.store.manifest["embedding"]["model_id"] == str(own_model)
    assert own_kb.search("路面塌陷后多长时间内要设置警示标志？")[0].citation == "《乡村道路养护条例》第三条"
    with pytest.raises(IndexMismatchError):
        KnowledgeBase.open(own_settings.index_dir, settings=settings, embedder=embedder)


def test_reingest_embeds_only_what_changed(fresh_index: Path, settings: Settings, embedder: Embedder) -> None:
    settings = settings.with_(vector_cache="off")  # reuse from the index in use alone (tests/test_vector_cache.py)
    before = open_kb(fresh_index, settings, embedder)
    corpus = fresh_index.parent / "corpus"
    (corpus / "村规民约.md").write_text(
        "# 村规民约\n\n<!-- INFO END -->\n\n第一条 村民应当爱护公共设施。\n\n第二条 禁止在河道内倾倒垃圾。\n\n"
        "第三条 红白喜事从简办理，宴席不超过十桌。\n", encoding="utf-8")
    report = build(corpus, fresh_index, settings, embedder)
    assert report.reused == len(before.store.chunks) and report.chunks == len(before.store.chunks) + 3
    after = open_kb(fresh_index, settings, embedder)
    new_rows = [i for i, c in enumerate(after.store.chunks) if after.documents[c.doc_id].title == "村规民约"]
    texts = [indexing_text(after.documents[after.store.chunks[i].doc_id], after.store.chunks[i]) for i in new_rows]
    np.testing.assert_allclose(after.store.vectors[new_rows], embedder.encode_passages(texts), atol=1e-5)
    old = {c.chunk_id: i for i, c in enumerate(before.store.chunks)}
    for i, chunk in enumerate(after.store.chunks):
        if chunk.chunk_id in old:
            np.testing.assert_array_equal(after.store.vectors[i], before.store.vectors[old[chunk.chunk_id]])
    assert after.search("宴席不超过几桌")[0].citation == "《村规民约》第三条"


def test_the_zero_copy_vectors_outlive_the_view_that_made_them() -> None:
    """IndexView.vectors is FAISS's own storage: an array of it (or a slice) keeps the index alive, even when
    the KnowledgeBase that loaded it is gone (`KnowledgeBase.open(...).store.vectors` read freed memory once)."""
    import gc

    index = faiss.IndexFlatIP(8)
    expected = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    index.add(expected)
    rows = stored_vectors(index)[10:20]
    del index
    gc.collect()
    _ = [np.ones(400) for _ in range(5000)]  # reuse freed memory, if any was freed
    np.testing.assert_array_equal(rows, expected[10:20])
    assert not rows.flags.writeable


def test_removing_an_index_removes_its_link_and_every_build(fresh_index: Path) -> None:
    assert fresh_index.is_symlink() and builds_dir(fresh_index).is_dir()
    remove_index(fresh_index)
    assert not fresh_index.exists() and not fresh_index.is_symlink() and not builds_dir(fresh_index).exists()
    remove_index(fresh_index)  # nothing left to remove is fine
