"""The content-keyed vector cache: re-ingests embed only text never seen, even without the old index."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_small_corpus

from ingest.build import ingest
from ingest.vector_cache import VectorCache, text_key
from kb.config import Settings
from kb.embedding.embedder import Embedder
from kb.knowledge_base import KnowledgeBase


class CountingEmbedder:
    """The real embedder, counting the passages it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.embedded = inner, 0
        self.model_id, self.fingerprint, self.dimension = inner.model_id, inner.fingerprint, inner.dimension
        self.query_fingerprint = inner.query_fingerprint

    def encode_passages(self, passages):  # noqa: ANN001, ANN201 - same as Embedder's
        self.embedded += len(passages)
        return self.inner.encode_passages(passages)

    def encode_queries(self, queries):  # noqa: ANN001, ANN201
        return self.inner.encode_queries(queries)


def test_cache_round_trip_and_shape_check(tmp_path: Path) -> None:
    cache = VectorCache(tmp_path / "v.sqlite", dimension=4)
    cache.put_many([(text_key("甲"), np.arange(4, dtype=np.float32)), (text_key("乙"), np.ones(3, dtype=np.float32))])
    found = cache.get_many([text_key("甲"), text_key("乙"), text_key("丙")])
    assert list(found) == [text_key("甲")]  # the 3-wide row is ignored, the unknown key absent
    np.testing.assert_array_equal(found[text_key("甲")], np.arange(4, dtype=np.float32))
    assert len(cache) == 2
    cache.close()


def test_rebuild_after_the_index_is_deleted_embeds_nothing(tmp_path: Path, settings: Settings,
                                                           embedder: Embedder) -> None:
    corpus = make_small_corpus(tmp_path)
    own = settings.with_(index_dir=tmp_path / "index", vector_cache=str(tmp_path / "vectors"))
    counting = CountingEmbedder(embedder)
    first = ingest([corpus], own, embedder=counting)
    assert first.reused == 0 and counting.embedded == first.chunks
    before = KnowledgeBase.open(own.index_dir, settings=own, embedder=embedder).store.vectors.copy()
    shutil.rmtree(own.index_dir.resolve())
    own.index_dir.unlink()
    counting.embedded = 0
    second = ingest([corpus], own, embedder=counting)
    assert second.reused == second.chunks and counting.embedded == 0
    after = KnowledgeBase.open(own.index_dir, settings=own, embedder=embedder).store.vectors
    np.testing.assert_array_equal(before, after)


def test_interrupted_ingest_resumes_from_what_was_committed(tmp_path: Path, settings: Settings,
                                                             embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.embed as embedding

    monkeypatch.setattr(embedding, "EMBED_BLOCK", 2)
    corpus = make_small_corpus(tmp_path)
    own = settings.with_(index_dir=tmp_path / "index", vector_cache=str(tmp_path / "vectors"))

    class FailsOnSecondBlock(CountingEmbedder):
        def encode_passages(self, passages):  # noqa: ANN001, ANN201
            if self.embedded >= 2:
                raise RuntimeError("power cut")
            return super().encode_passages(passages)

    with pytest.raises(RuntimeError, match="power cut"):
        ingest([corpus], own, embedder=FailsOnSecondBlock(embedder))
    assert not own.index_dir.exists()  # nothing half-built was published
    counting = CountingEmbedder(embedder)
    report = ingest([corpus], own, embedder=counting)
    assert report.reused == 2 and counting.embedded == report.chunks - 2


def test_cache_can_be_turned_off(tmp_path: Path, settings: Settings, embedder: Embedder) -> None:
    own = settings.with_(index_dir=tmp_path / "index", vector_cache="off")
    assert own.vector_cache_dir is None
    ingest([make_small_corpus(tmp_path)], own, embedder=embedder)
    assert not (tmp_path / "vectors").exists()
