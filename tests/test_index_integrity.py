"""A damaged index is refused when loaded, with one line naming the file and what is wrong: never a traceback,
never served. The files are damaged and their checksums then recomputed, as kb.stores.index_dir computes them, so that
only the checks of shapes and vectors can tell.

Built without the embedding model (unit vectors at random, real BM25 and handles), so these tests are fast.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pytest

from kb.errors import IndexCorruptError, IndexMismatchError
from kb.schema import CHUNKER_VERSION, Chunk, DatedEvent, Document
from kb.stores.handles import Handle, QuestionHandles
from kb.stores.index_dir import FORMAT_VERSION, IndexContents, load_index, stored_vectors, write_index
from kb.text.lexical import LexicalIndex

DIMENSION = 8
TEXTS = ["村民委员会负责本村道路的日常巡查。", "发现路面塌陷应当设置警示标志。", "摊位费每个摊位每天不超过十元。"]
QUESTIONS = ["路坏了谁来修", "路面塌陷怎么办", "摆摊一天多少钱", "残疾人要交摊位费吗"]
DROP = object()  # a key to delete instead of set


def unit_vectors(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build with passages and attached questions, written by kb.stores.index_dir like any other."""
    text = "".join(TEXTS)
    documents = [Document("d1", "乡村道路养护条例", "law", "乡村道路养护条例.md", "0" * 64, text,
                          [DatedEvent("2023-06-15", "发布")], "2023-06-15")]
    chunks, start = [], 0
    for seq, passage in enumerate(TEXTS):
        chunks.append(Chunk(f"c{seq}", "d1", seq, "", f"第{seq + 1}条", seq + 1, 0, start, start + len(passage),
                            passage))
        start += len(passage)
    handles = [Handle(q, "d1", 1 + i % 3, "plain") for i, q in enumerate(QUESTIONS)]
    contents = IndexContents(documents, chunks, unit_vectors(len(chunks), 1), LexicalIndex.build(TEXTS), "test-model",
                             "0123456789abcdef", QuestionHandles.build(handles, unit_vectors(len(handles), 2)))
    return write_index(contents, tmp_path_factory.mktemp("integrity") / "index")


@pytest.fixture
def index(built: Path, tmp_path: Path) -> Path:
    """A copy of the build to damage."""
    return Path(shutil.copytree(built, tmp_path / "build"))


def refused(index: Path, *says: str) -> str:
    """The one-line refusal of `index`, checked to name what it should."""
    with pytest.raises(IndexCorruptError) as error:
        load_index(index)
    message = str(error.value)
    assert "\n" not in message and "`kb ingest`" in message
    for part in says:
        assert part in message
    return message


def edit_json(path: Path, keys: tuple[str, ...], value: object) -> None:
    """Set (or with DROP delete) the value at `keys` inside a JSON file; no keys: the whole file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not keys:
        data = value
    else:
        parent = data
        for key in keys[:-1]:
            parent = parent[key]
        if value is DROP:
            del parent[keys[-1]]
        else:
            parent[keys[-1]] = value
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def reseal(index: Path) -> None:
    """Recompute the manifest's checksums as kb.stores.index_dir writes them: SHA-256 of every other file."""
    checksums = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted(index.iterdir()) if p.name != "manifest.json"}
    edit_json(index / "manifest.json", ("checksums",), checksums)


def test_undamaged_index_loads(index: Path) -> None:
    loaded = load_index(index)
    assert len(loaded.chunks) == loaded.dense.ntotal == loaded.lexical.n_docs == len(TEXTS)
    assert [h.question for h in loaded.handles.handles] == QUESTIONS
    assert loaded.documents["d1"].dates == [DatedEvent("2023-06-15", "发布")]


# --- manifests of the wrong shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("keys", "value", "says"), [
    ((), [], "the file should be an object, not an array"),
    ((), "manifest", "the file should be an object, not a string"),
    ((), None, "the file should be an object, not null"),
    (("embedding",), "e5-small", "embedding should be an object, not a string"),
    (("embedding", "dimension"), "8", "embedding.dimension should be an integer, not a string"),
    (("embedding", "dimension"), 8.0, "embedding.dimension should be an integer, not a number"),
    (("embedding", "model_id"), DROP, "embedding.model_id is missing"),
    (("embedding", "fingerprint"), None, "embedding.fingerprint should be a string, not null"),
    (("counts",), [1, 3, 4], "counts should be an object, not an array"),
    (("counts", "chunks"), "3", "counts.chunks should be an integer, not a string"),
    (("counts", "questions"), True, "counts.questions should be an integer, not true or false"),
    (("counts", "documents"), DROP, "counts.documents is missing"),
    (("documents",), ["乡村道路养护条例.md"], "documents should be an object, not an array"),
    (("documents", "乡村道路养护条例.md"), 1, "documents['乡村道路养护条例.md'] should be a string, not an integer"),
    (("built_at",), 20240101, "built_at should be a string, not an integer"),
    (("checksums",), DROP, "checksums is missing"),
    (("checksums",), ["dense.faiss"], "checksums should be an object, not an array"),
    (("checksums", "dense.faiss"), None, "checksums['dense.faiss'] should be a string, not null"),
])
def test_manifest_of_the_wrong_shape_is_refused(index: Path, keys: tuple[str, ...], value: object, says: str) -> None:
    edit_json(index / "manifest.json", keys, value)
    refused(index, "manifest.json: " + says)


@pytest.mark.parametrize(("key", "value"), [("format_version", str(FORMAT_VERSION)), ("format_version", DROP),
                                            ("chunker_version", True), ("chunker_version", float(CHUNKER_VERSION))])
def test_version_of_the_wrong_type_is_another_version(index: Path, key: str, value: object) -> None:
    """Refused as a mismatch (which the first start rebuilds on its own), never taken for this program's."""
    edit_json(index / "manifest.json", (key,), value)
    with pytest.raises(IndexMismatchError, match="`kb ingest`"):
        load_index(index)


@pytest.mark.parametrize(("name", "keys", "value", "says"), [
    ("handles.json", (), {"q": "路坏了谁来修"}, "the file should be an array, not an object"),
    ("handles.json", (0,), ["路坏了谁来修", "d1", 1], "[0] should be an object, not an array"),
    ("handles.json", (1, "q"), DROP, "[1].q is missing"),
    ("handles.json", (1, "doc_id"), 7, "[1].doc_id should be a string, not an integer"),
    ("handles.json", (2, "target"), 1.5, "[2].target should be an integer or a string, not a number"),
    ("handles.json", (2, "target"), False, "[2].target should be an integer or a string, not true or false"),
    ("handles.json", (3, "form"), None, "[3].form should be a string, not null"),
    ("lexical_vocab.json", (), ["信访"], "the file should be an object, not an array"),
    ("lexical_vocab.json", ("n_docs",), "3", "n_docs should be an integer, not a string"),
    ("lexical_vocab.json", ("n_docs",), DROP, "n_docs is missing"),
    ("lexical_vocab.json", ("terms",), "村民 道路", "terms should be an array, not a string"),
    ("lexical_vocab.json", ("terms", 0), 0, "terms[0] should be a string, not an integer"),
    ("handles_lexical_vocab.json", ("n_docs",), None, "n_docs should be an integer, not null"),
    ("handles_lexical_vocab.json", ("terms",), {"路": 0}, "terms should be an array, not an object"),
])
def test_index_json_of_the_wrong_shape_is_refused(index: Path, name: str, keys: tuple, value: object,
                                                  says: str) -> None:
    edit_json(index / name, keys, value)
    reseal(index)
    refused(index, f"{name}: {says}")


@pytest.mark.parametrize(("dates", "says"), [
    ({"2023-06-15": "发布"}, "the file should be an array, not an object"),
    ([{"date": 20230615, "event": "发布"}], "[0].date should be a string, not an integer"),
    ([{"date": "2023-06-15"}], "[0].event is missing"),
])
def test_dates_of_the_wrong_shape_are_refused(index: Path, dates: object, says: str) -> None:
    with sqlite3.connect(index / "meta.sqlite") as db:
        db.execute("UPDATE documents SET dates = ?", (json.dumps(dates),))
    db.close()
    reseal(index)
    refused(index, "meta.sqlite (dates): " + says)


def test_checksums_must_cover_every_file_and_only_the_builds(index: Path, tmp_path: Path) -> None:
    edit_json(index / "manifest.json", ("checksums", "handles.npy"), DROP)
    refused(index, "no checksum for handles.npy")
    reseal(index)
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the build", encoding="utf-8")
    edit_json(index / "manifest.json", ("checksums", "../outside.txt"),
              hashlib.sha256(outside.read_bytes()).hexdigest())
    refused(index, "'../outside.txt' is missing")


# --- vectors that are not the model's -------------------------------------------------------------------------


def damage_passages(index: Path, damage: Callable[[np.ndarray], None]) -> None:
    dense = faiss.read_index(str(index / "dense.faiss"))
    vectors = stored_vectors(dense).copy()
    damage(vectors)
    damaged = faiss.IndexFlatIP(vectors.shape[1])
    damaged.add(vectors)
    faiss.write_index(damaged, str(index / "dense.faiss"))


def damage_handles(index: Path, damage: Callable[[np.ndarray], None]) -> None:
    vectors = np.load(index / "handles.npy")
    damage(vectors)
    np.save(index / "handles.npy", vectors)


def scale(vectors: np.ndarray) -> None:
    vectors *= np.float32(1e30)


def nan_in_one(vectors: np.ndarray) -> None:
    vectors[1, 3] = np.nan


def inf_in_one(vectors: np.ndarray) -> None:
    vectors[2, 0] = np.inf


def zero_one(vectors: np.ndarray) -> None:
    vectors[0] = 0


@pytest.mark.parametrize("damage", [scale, nan_in_one, inf_in_one, zero_one])
@pytest.mark.parametrize(("damage_file", "name"), [(damage_passages, "dense.faiss"), (damage_handles, "handles.npy")])
def test_vectors_not_of_unit_length_are_refused(index: Path, damage: Callable[[np.ndarray], None],
                                                 damage_file: Callable, name: str) -> None:
    damage_file(index, damage)
    reseal(index)
    message = refused(index, name, "not of unit length")
    if damage is scale:
        assert "3 of 3 vectors" in message or "4 of 4 vectors" in message
        assert "length 1e+30" in message


def test_vectors_within_the_tolerance_load(index: Path) -> None:
    """float32 rounding, or another backend's normalisation, is no damage."""
    damage_passages(index, lambda v: v.__imul__(np.float32(1.001)))
    reseal(index)
    assert load_index(index).dense.ntotal == len(TEXTS)


def test_dense_index_of_another_kind_is_refused(index: Path) -> None:
    vectors = stored_vectors(faiss.read_index(str(index / "dense.faiss"))).copy()
    l2 = faiss.IndexFlatL2(DIMENSION)
    l2.add(vectors)
    faiss.write_index(l2, str(index / "dense.faiss"))
    reseal(index)
    refused(index, "dense.faiss holds a IndexFlatL2")


def test_handle_vectors_of_another_type_are_refused(index: Path) -> None:
    np.save(index / "handles.npy", np.load(index / "handles.npy").astype(np.float64))
    reseal(index)
    refused(index, "attached questions disagree")


@pytest.mark.parametrize("row", [-1, len(TEXTS)])
def test_postings_outside_the_passages_are_refused(index: Path, row: int) -> None:
    docs = np.load(index / "lexical_docs.npy")
    docs[0] = row
    np.save(index / "lexical_docs.npy", docs)
    reseal(index)
    refused(index, "lexical_*.npy: postings out of order, outside the 3 rows")
