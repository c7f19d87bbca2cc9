"""The query adapter: plain .npy files, applied only to the model it was trained for."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import make_small_corpus
from ingest.build import ingest
from kb.adapter import ADAPTERS_DIR, QueryAdapter
from kb.config import Settings
from kb.embed import Embedder
from kb.errors import KnowledgeBaseError
from kb.knowledge_base import KnowledgeBase


def random_adapter(dim: int = 8, rank: int = 2) -> QueryAdapter:
    rng = np.random.default_rng(0)
    return QueryAdapter(rng.normal(size=(dim, rank)), rng.normal(size=(rank, dim)), {"rank": rank})


def test_apply_moves_and_renormalises() -> None:
    adapter = random_adapter()
    vectors = np.eye(8, dtype=np.float32)[:3]
    moved = adapter.apply(vectors)
    assert moved.shape == (3, 8) and moved.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 1.0, atol=1e-6)
    assert np.abs(moved - vectors).max() > 0.01
    identity = QueryAdapter(np.zeros((8, 2)), np.zeros((2, 8)), {})
    np.testing.assert_allclose(identity.apply(vectors), vectors, atol=1e-7)


def test_save_and_load_round_trip_without_pickle(tmp_path: Path) -> None:
    adapter = random_adapter()
    adapter.save(tmp_path / "abc123")
    loaded = QueryAdapter.for_model("abc123", 8, directory=tmp_path)
    assert loaded is not None and loaded.meta == {"rank": 2}
    np.testing.assert_array_equal(loaded.down, adapter.down)
    assert QueryAdapter.for_model("another-model", 8, directory=tmp_path) is None
    assert QueryAdapter.for_model("abc123", 384, directory=tmp_path) is None  # wrong dimension: not applied


def test_mismatched_matrices_are_refused() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        QueryAdapter(np.zeros((8, 2)), np.zeros((3, 8)), {})


def test_the_default_model_ships_an_adapter_trained_on_stard_train_only(embedder: Embedder) -> None:
    adapter = QueryAdapter.for_model(embedder.fingerprint, embedder.dimension)
    assert adapter is not None, f"no adapter in {ADAPTERS_DIR} for the default model"
    assert adapter.meta["fingerprint"] == embedder.fingerprint
    assert "train" in adapter.meta["trained_on"] and "dev" not in adapter.meta["trained_on"]
    assert adapter.down.size + adapter.up.size <= 2 * 384 * 64  # small: a few hundred KB at most


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory: pytest.TempPathFactory, settings: Settings, embedder: Embedder) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("adapter_kb")
    own = settings.with_(index_dir=root / "index")
    ingest([make_small_corpus(root)], own, embedder=embedder)
    return KnowledgeBase.open(settings=own, embedder=embedder)


def test_first_stage_methods_follow_the_setting_and_the_ranked_method_needs_none(small_kb: KnowledgeBase) -> None:
    """No switch to set: "ranked" (the default) searches with both vectors and weighs them as it learnt."""
    params = small_kb.params
    assert params.method == "ranked" and params.query_adapter == "off"
    assert not small_kb.retriever.uses_adapter(params)
    assert small_kb.retriever.uses_adapter(replace(params, query_adapter="on"))


def test_adapter_changes_ranking_scores_but_not_the_cosine_the_answer_stage_weighs(small_kb: KnowledgeBase) -> None:
    question = "路面塌陷后多长时间内要设置警示标志？"
    default = small_kb.params
    plain = small_kb.with_params(replace(default, query_adapter="off", method="dense")).retrieve(question, top_k=3)
    adapted = small_kb.with_params(replace(default, query_adapter="on", method="dense")).retrieve(question, top_k=3)
    assert adapted.top_dense == pytest.approx(plain.top_dense, abs=1e-6)
    assert [h.score for h in adapted.hits] != [h.score for h in plain.hits]


def test_unknown_adapter_mode_is_refused(settings: Settings, embedder: Embedder, small_kb: KnowledgeBase) -> None:
    with pytest.raises(KnowledgeBaseError, match="query_adapter"):
        KnowledgeBase(small_kb.view, embedder, replace(small_kb.params, query_adapter="sometimes"))
